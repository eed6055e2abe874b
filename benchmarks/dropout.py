"""Dropout on a CPU: PyTorch's per-element Bernoulli mask against attend's 16-bit lanes.

Prints one table: forward + backward time of dropout alone on the tensor sizes
of a training batch of a config's model (by default the G2P Transformer,
configs/g2p-transformer.yaml, at its configured batch size), then one whole
training step of that model with each dropout. Rounds alternate between the
two; the table gives each one's median time, and the median of the rounds'
speed-ups (one round's pair of times shares that moment's machine speed).

    python benchmarks/dropout.py --threads 2
    python benchmarks/dropout.py --set train.batch_tokens=16000    # the README's G2P rows
    python benchmarks/dropout.py --config configs/multi30k-en-de-transformer.yaml --data-dir ../shared/data/multi30k
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import attend.models.dropout as attend_dropout  # noqa: E402
import attend.models.transformer as transformer  # noqa: E402
from attend.config import load_config, with_overrides  # noqa: E402
from attend.data.batching import bucket_batches, collate  # noqa: E402
from attend.train import Trainer, prepare  # noqa: E402

ATTEND = attend_dropout.dropout


def pytorch_dropout(x, p, training=True):
    return F.dropout(x, p, training)


def use(implementation) -> None:
    """Route every dropout of attend's models through `implementation`."""
    attend_dropout.dropout = transformer.dropout = implementation


def time_alone(elements: int, p: float, implementation, reps: int) -> float:
    """Seconds for dropout forward and backward on `elements` numbers (median of reps)."""
    x0 = torch.randn(elements)
    times = []
    for _ in range(reps + 1):
        x = x0.clone().requires_grad_()
        start = time.perf_counter()
        implementation(x, p).backward(x0)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def time_steps(trainer: Trainer, batches, implementation) -> float:
    """Seconds per training step over `batches` (after one step of warm-up)."""
    use(implementation)
    trainer._train_step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer._train_step(batch)
    return (time.perf_counter() - start) / (len(batches) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round and dropout")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "g2p-transformer.yaml")
    parser.add_argument("--data-dir", help="folder of the corpus files the config names")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change one config value (repeatable), e.g. train.batch_tokens=16000")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attend-dropout-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = with_overrides(load_config(args.config), args.set)
    if args.data_dir:
        config.data.data_dir = args.data_dir
    data = prepare(config)
    args.workdir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, args.workdir, data, progress=False)
    order = bucket_batches(data.examples, config.train.batch_tokens, random.Random(0))
    batches = [collate(data.examples, indices) for indices in order[: args.steps + 1]]
    rows_per_batch = batches[1].tgt_in.numel()
    d, ff = config.model.hidden_size, config.model.ff_size
    sizes = {f"residual stream ({rows_per_batch:,} x {d})": rows_per_batch * d,
             f"feed-forward inner ({rows_per_batch:,} x {ff})": rows_per_batch * ff}

    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name, implementation in (("PyTorch F.dropout", pytorch_dropout), ("attend", ATTEND)):
            for what, elements in sizes.items():
                results.setdefault(what, {}).setdefault(name, []).append(time_alone(elements, config.model.dropout, implementation, 5))
            step = time_steps(trainer, batches, implementation)
            results.setdefault("one training step", {}).setdefault(name, []).append(step)
    use(ATTEND)

    print(f"\n{args.config.name}: dropout p={config.model.dropout:g}, forward + backward, {args.threads} threads, "
          f"torch {torch.__version__}, median of {args.rounds} alternating rounds\n")
    print("| what | PyTorch F.dropout | attend | speed-up | speed-up in each round |")
    print("|---|---:|---:|---:|---|")
    for what, by_name in results.items():
        ours, theirs = statistics.median(by_name["attend"]), statistics.median(by_name["PyTorch F.dropout"])
        unit, scale = ("s", 1) if what == "one training step" else ("ms", 1000)
        ratios = [t / o for t, o in zip(by_name["PyTorch F.dropout"], by_name["attend"])]
        rounds = " ".join(f"{r:.2f}" for r in ratios)
        print(f"| {what} | {theirs * scale:.2f} {unit} | {ours * scale:.2f} {unit} | "
              f"{statistics.median(ratios):.2f}x | {rounds} |")


if __name__ == "__main__":
    main()
