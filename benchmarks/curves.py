"""Learning curves of attend and Joey NMT with the same hyperparameters: is attend's speed bought with quality?

Trains Joey NMT 2.3 (through benchmarks/peers/joeynmt.py, in its own virtual
environment) and attend on Multi30k en->de with the same model (3+3 layers,
d_model 256, 4 heads, ff 1024, output tied to the target embedding), the same
optimiser and schedule (Adam 0.9/0.98, peak lr 5e-4, linear warm-up then
inverse square root, label smoothing 0.1, clipping at 1.0, dropout 0.1) and
about the same real target tokens per batch, then prints greedy validation
BLEU (sacreBLEU, detokenized) against target tokens trained for both. Both
validate on the same first --valid-sentences lines of val, copied into
--out/data beside links to the training and test files.

Joey runs first for --joey-minutes (its validation pauses count in that time);
attend then trains for as many steps as Joey reached. The two batch sizes are
set in different units (Joey's counts its own way; attend's is padded
batch x longest side), so each row reports the target tokens each system had
really trained on, and the table pairs validations by step.

    python benchmarks/curves.py --data ../shared/data/multi30k --out runs/curves --joey-minutes 36
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ["train.en.gz", "train.de.gz", "test_2016_flickr.en.gz", "test_2016_flickr.de.gz"]
JOEY_VALID = re.compile(r"Evaluation result \(greedy\): bleu:\s+([\d.]+)")


def make_data(source: Path, folder: Path, valid_sentences: int) -> Path:
    """Links to the training and test files, and the first `valid_sentences` lines of val."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        link = folder / name
        if not link.exists():
            link.symlink_to((source / name).resolve())
    for side in ("en", "de"):
        with gzip.open(source / f"val.{side}.gz", "rt", encoding="utf-8") as f:
            lines = [line for _, line in zip(range(valid_sentences), f)]
        with gzip.open(folder / f"val.{side}.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines)
    return folder


def run_joey(args, data: Path) -> dict:
    """Joey's run through the peer script; its validation BLEU per --eval-every steps and tokens per step."""
    out = args.out / "joey.json"
    if not out.is_file():
        command = [sys.executable, str(ROOT / "benchmarks" / "peers" / "joeynmt.py"), "--data", str(data),
                   "--venv", str(args.joey_venv), "--minutes", str(args.joey_minutes), "--eval-every",
                   str(args.eval_every), "--log-every", "10", "--warmup", str(args.warmup), "--batch-tokens",
                   str(args.joey_batch_tokens), "--threads", str(args.threads), "--no-decode",
                   "--workdir", str(args.out / "joey"), "--json", str(out)]
        subprocess.run(command, check=True)
    row = json.loads(out.read_text())
    per_step = row["target_tokens_trained"] / row["steps"]
    bleus = JOEY_VALID.findall((args.out / "joey" / "model" / "train.log").read_text(errors="replace"))
    return {"steps": row["steps"], "target_tokens_per_step": per_step,
            "tokens_per_s_src_tgt": row["tokens_per_s_src_tgt"],
            "valid": [{"step": (i + 1) * args.eval_every, "target_tokens": round((i + 1) * args.eval_every * per_step),
                       "bleu": float(b)} for i, b in enumerate(bleus)]}


def run_attend(args, data: Path, steps: int) -> dict:
    """attend with Joey's hyperparameters for `steps` steps; validation BLEU and target tokens per validation."""
    import torch

    from attend.config import load_config, with_overrides
    from attend.train import train

    folder = args.out / "attend"
    if not (folder / "metrics.jsonl").is_file():
        torch.set_num_threads(args.threads)
        config = load_config(ROOT / "configs" / "multi30k-en-de-transformer.yaml")
        config.data.data_dir = str(data.resolve())
        config = with_overrides(config, [
            "train.lr=0.0005", "train.schedule=inverse_sqrt", f"train.warmup_steps={args.warmup}",
            f"train.batch_tokens={args.attend_batch_tokens}", f"train.eval_every={args.eval_every}",
            f"train.max_steps={steps}", "train.max_minutes=100000", "train.patience=100000",
            f"train.valid_max_sentences={args.valid_sentences}", f"train.threads={args.threads}",
        ])
        train(config, folder, progress=True)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in records if "tokens_per_s" in r]
    return {"steps": max(r["step"] for r in records),
            "target_tokens_per_step": train_rows[-1]["target_tokens"] / train_rows[-1]["step"],
            # the median window: a window that held a validation pause reads low
            "tokens_per_s_src_tgt": statistics.median(r["tokens_per_s"] for r in train_rows),
            "valid": [{"step": r["step"], "target_tokens": r["target_tokens"], "bleu": r["valid"]["bleu"]}
                      for r in records if "valid" in r]}


def print_table(joey: dict, attend: dict) -> None:
    print("\n| step | Joey NMT target tokens | Joey NMT valid BLEU | attend target tokens | attend valid BLEU |\n"
          "|---:|---:|---:|---:|---:|")
    attend_at = {v["step"]: v for v in attend["valid"]}
    for j in joey["valid"]:
        a = attend_at.get(j["step"])
        cells = [f"{a['target_tokens']:,}", f"{a['bleu']:.2f}"] if a else ["-", "-"]
        print(f"| {j['step']} | {j['target_tokens']:,} | {j['bleu']:.2f} | {' | '.join(cells)} |")
    print(f"\ntarget tokens per step: Joey NMT {joey['target_tokens_per_step']:,.0f}, attend "
          f"{attend['target_tokens_per_step']:,.0f}; training tokens/s (src+tgt): Joey NMT "
          f"{joey['tokens_per_s_src_tgt']:,.0f}, attend {attend['tokens_per_s_src_tgt']:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the Multi30k folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for both runs (finished runs are reused)")
    parser.add_argument("--joey-venv", type=Path, default=ROOT / "runs" / "peers" / "joeynmt-venv")
    parser.add_argument("--joey-minutes", type=float, default=36.0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps of both schedules")
    parser.add_argument("--valid-sentences", type=int, default=300)
    parser.add_argument("--joey-batch-tokens", type=int, default=4096)
    parser.add_argument("--attend-batch-tokens", type=int, default=2100,
                        help="attend's padded batch size giving about Joey's real target tokens per step")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.data, args.out / "data", args.valid_sentences)
    started = time.time()
    joey = run_joey(args, data)
    steps = joey["steps"] // args.eval_every * args.eval_every
    attend = run_attend(args, data, steps)
    (args.out / "curves.json").write_text(json.dumps({"joey": joey, "attend": attend}, indent=1))
    print_table(joey, attend)
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
