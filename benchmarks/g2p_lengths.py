"""Where attention helps in G2P: WER and PER by word length, for several trained models side by side.

The bottleneck of the RNN without attention is its one fixed-size context:
the longer the word, the more it must squeeze into it. This decodes the
standard CMUdict test words with each model folder given and prints one table,
the test words grouped by their number of letters, so that the families can
be compared where the words are long, not only on the average.

    python benchmarks/g2p_lengths.py runs/bench-g2p/rnn runs/bench-g2p/rnn-attention --beam 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attend.checkpoint import load_model  # noqa: E402
from attend.evaluate import wer_per  # noqa: E402
from attend.inference import SearchOptions, Translator  # noqa: E402
from attend.recipes import group_references  # noqa: E402
from attend.recipes.g2p_cmudict import test_pairs  # noqa: E402

BUCKETS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 99))  # letters, inclusive


def bucket_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 99 else f"{low}-{high}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="trained G2P model folders")
    parser.add_argument("--beam", type=int, default=1, help="beam size (default 1: greedy)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test = group_references(test_pairs())
    words, refs = [w for w, _ in test], [r for _, r in test]
    groups = {bucket: [i for i, w in enumerate(words) if bucket[0] <= len(w) <= bucket[1]] for bucket in BUCKETS}
    columns = [b for b in BUCKETS if groups[b]]
    rows = []
    for folder in args.models:
        hyps = Translator(load_model(folder), SearchOptions(beam_size=args.beam), batch_size=256).best(words)
        scores = {b: wer_per([hyps[i] for i in groups[b]], [refs[i] for i in groups[b]]) for b in columns}
        rows.append((folder, wer_per(hyps, refs), scores))

    search = "greedy" if args.beam == 1 else f"beam {args.beam}"
    print(f"\nCMUdict 0.7b standard test words, WER % / PER % by word length in letters ({search})\n")
    print("| model | all | " + " | ".join(f"{bucket_name(*b)} ({len(groups[b])} words)" for b in columns) + " |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for folder, overall, scores in rows:
        cells = [f"{overall['wer']:.1f} / {overall['per']:.2f}"]
        cells += [f"{scores[b]['wer']:.1f} / {scores[b]['per']:.2f}" for b in columns]
        print(f"| {folder} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
