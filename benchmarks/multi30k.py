"""Multi30k translation benchmark: attend's families (and Joey NMT) on the same data and budget, in one table.

Trains each family from its shipped config (configs/multi30k-PAIR-FAMILY.yaml)
under the same wall-clock budget on the Multi30k folder given with --data,
averages the last checkpoints, tunes the beam's length penalty on the
validation set, and scores test_2016_flickr with sacreBLEU on detokenized,
cased text (greedy and beam). With --joey-json it adds the Joey NMT row
measured by benchmarks/peers/joeynmt.py on the same data and budget.

    python benchmarks/multi30k.py --data ../shared/data/multi30k --minutes 60 --out runs/bench-m30k
    python benchmarks/multi30k.py --data ../shared/data/multi30k --families transformer --minutes 120 \\
        --joey-json runs/peers/joeynmt.json

Each family's folder keeps its test outputs (test_2016_flickr.greedy.de and .beam.de for en-de).
Each family runs in its own process so its peak memory is its own. Finished
families are reused (their benchmark.json), so the table can be reprinted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from variants import (add_variant_args, best_or_averaged, check_variant_args, device_name,  # noqa: E402
                      reused_result)

FAMILIES = ("transformer", "rnn-attention", "rnn")
# length penalties tried on validation; 1.4 and 1.8 joined after 1.0, the old top, won in every row
ALPHAS = [0.0, 0.6, 1.0, 1.4, 1.8]


def run_family(family: str, args) -> dict:
    """Train, average, tune and score one family (in this process); returns its table row."""
    import torch

    from attend.config import load_config, with_overrides
    from attend.data.corpus import read_lines
    from attend.evaluate import bleu_chrf
    from attend.inference import SearchOptions, Translator
    from attend.models import count_parameters
    from attend.train import train
    from attend.tuning import best_alpha, tune_alpha

    if args.threads:
        torch.set_num_threads(args.threads)
    label = args.name or family
    folder = args.out / label
    config = load_config(ROOT / "configs" / f"multi30k-{args.pair}-{family}.yaml")
    config.data.data_dir = str(Path(args.data).resolve())
    config.train.max_minutes, config.train.threads = args.minutes, args.threads
    config = with_overrides(config, args.set)
    started = time.time()
    summary = train(config, folder, progress=not args.quiet)
    train_seconds = time.time() - started
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if "tokens_per_s" in r]

    src, tgt = args.pair.split("-")
    data = Path(args.data)
    valid_src, valid_refs = read_lines(data / f"val.{src}.gz"), [[r] for r in read_lines(data / f"val.{tgt}.gz")]
    test_src, test_ref = read_lines(data / f"test_2016_flickr.{src}.gz"), read_lines(data / f"test_2016_flickr.{tgt}.gz")

    # the checkpoint to report is chosen on validation BLEU, never on test
    def valid_bleu(loaded):
        return bleu_chrf(Translator(loaded, batch_size=128).best(valid_src), valid_refs)["bleu"]

    name, chosen, _ = best_or_averaged(folder, args.out / f"{label}-averaged", valid_bleu)
    alpha, _ = best_alpha(tune_alpha(chosen, valid_src, valid_refs, args.beam, ALPHAS, 64), "bleu")
    row = {"system": f"attend {label}", "family": family, "settings": args.set,
           "parameters": count_parameters(chosen.model),
           "checkpoint": name, "alpha": alpha, "minutes": train_seconds / 60, "steps": summary["step"],
           "train_tokens_per_s": training_rate(windows), "device": device_name()}
    for search, beam in (("greedy", 1), ("beam", args.beam)):
        translator = Translator(chosen, SearchOptions(beam_size=beam, alpha=alpha if beam > 1 else 0.0), 64)
        started = time.time()
        hyps = translator.best(test_src)
        seconds = time.time() - started
        scores = bleu_chrf(hyps, [[r] for r in test_ref])
        row[search] = {"bleu": scores["bleu"], "chrf": scores["chrf"], "sentences_per_s": len(test_src) / seconds,
                       "signature": scores["bleu_signature"]}
        # the outputs themselves, to read, to compare systems, or to test significance with sacreBLEU
        (folder / f"test_2016_flickr.{search}.{tgt}").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # Linux: KiB -> MB
    return row


def training_rate(windows: list[dict]) -> float:
    """Tokens per second over the whole run (total tokens over total training time), from the log windows'
    rates weighted by their tokens. Each window's source share is about the same, so its target tokens
    stand in for its tokens; a plain mean of the windows' rates would count a slow window as much as a fast one."""
    tokens, seconds, before = 0, 0.0, 0
    for w in windows:
        target = w["target_tokens"] - before
        before = w["target_tokens"]
        if target > 0 and w["tokens_per_s"] > 0:
            tokens, seconds = tokens + target, seconds + target / w["tokens_per_s"]
    return tokens / seconds if seconds else 0.0


def print_table(rows: list[dict], args) -> None:
    print(f"\nMulti30k {args.pair}, test_2016_flickr, sacreBLEU on detokenized cased text\n")
    print(f"| system | budget | steps | training tokens/s | BLEU greedy | BLEU beam {args.beam} | chrF | "
          f"decode sent/s greedy | decode sent/s beam {args.beam} | peak memory | device |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "bleu_greedy" in r:  # a peer's row, as benchmarks/peers/joeynmt.py writes it
            print(f"| {r['system']} | {r['budget_minutes']:.0f} min | {r['steps']} | {r['tokens_per_s_src_tgt']:,.0f} | "
                  f"{r['bleu_greedy']:.1f} | {r['bleu_beam5']:.1f} | {r['chrf_beam5']:.1f} | "
                  f"{r['sentences_per_s_greedy']:.1f} | {r['sentences_per_s_beam5']:.1f} | "
                  f"{r['peak_rss_mib'] * 2**20 / 1e6:,.0f} MB | {r['device']} |")
            continue
        g, b = r["greedy"], r["beam"]
        print(f"| {r['system']} | {r['minutes']:.0f} min | {r['steps']} | {r['train_tokens_per_s']:,.0f} | "
              f"{g['bleu']:.1f} | {b['bleu']:.1f} | {b['chrf']:.1f} | {g['sentences_per_s']:.1f} | "
              f"{b['sentences_per_s']:.1f} | {r['peak_rss_mb']:,.0f} MB | {r.get('device', '')} |")
    if rows:
        print(f"\nBLEU signature: {rows[0]['greedy']['signature']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the Multi30k folder (train/val/test_2016_flickr .gz files)")
    parser.add_argument("--pair", default="en-de", choices=["en-de", "en-fr"])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget per family")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: PyTorch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-multi30k")
    parser.add_argument("--joey-json", type=Path, help="result file of benchmarks/peers/joeynmt.py")
    parser.add_argument("--one", choices=FAMILIES, help=argparse.SUPPRESS)  # internal: run one family here
    add_variant_args(parser)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    check_variant_args(parser, args)
    if args.joey_json and (args.pair != "en-de" or args.beam != 5):
        parser.error("--joey-json: the Joey NMT harness trains en-de and decodes with beam 5; "
                     "use --pair en-de --beam 5 beside it")
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data}: not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        row = run_family(args.one, args)
        (args.out / (args.name or args.one) / "benchmark.json").write_text(json.dumps(row, indent=1))
        return
    rows = []
    for family in args.families:
        folder = args.out / (args.name or family)
        if reused_result(folder / "benchmark.json", args.set) is None:
            command = [sys.executable, __file__, "--one", family, *sys.argv[1:]]
            if subprocess.run(command).returncode != 0:
                sys.exit(f"benchmark of {family} failed; its log is {folder / 'train.log'}")
        rows.append(reused_result(folder / "benchmark.json", args.set))
    if args.joey_json and args.joey_json.exists():
        rows.append(json.loads(args.joey_json.read_text()))
    print_table(rows, args)


if __name__ == "__main__":
    main()
