"""Synthetic tasks for tests and demos: copy or reverse a sequence of symbols.

Small, learnable in seconds, and with one right answer, so a test can demand
near-perfect accuracy.
"""

from __future__ import annotations

import random

from attend.errors import AttendError
from attend.recipes import Task


def make_pairs(kind: str, count: int, vocab: int, max_len: int, seed: int,
               unlike: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """`count` (source, target) pairs of random sequences; none whose source is in `unlike`, as far as a
    bounded search finds others (a tiny symbol space may run out)."""
    rng = random.Random(seed)
    symbols = [chr(ord("a") + i) if i < 26 else f"s{i}" for i in range(vocab)]
    pairs = []
    for _ in range(100 * count):
        if len(pairs) == count:
            break
        seq = [rng.choice(symbols) for _ in range(rng.randint(1, max_len))]
        if " ".join(seq) in unlike:
            continue
        out = seq[::-1] if kind == "reverse" else seq
        pairs.append((" ".join(seq), " ".join(out)))
    return pairs


def load(kind: str, size: int, vocab: int, max_len: int) -> Task:
    """Training pairs, and validation pairs whose inputs training never shows (where the space allows)."""
    train = make_pairs(kind, size, vocab, max_len, seed=1)
    valid = make_pairs(kind, max(100, size // 20), vocab, max_len, seed=2, unlike=frozenset(s for s, _ in train))
    if not valid:
        raise AttendError(f"synthetic task {kind!r}: {size} training pairs use up every input of length "
                          f"{max_len} or less over {vocab} symbols, leaving none to validate on; raise "
                          "data.synthetic_vocab or data.synthetic_max_len")
    return Task(kind, train, [(s, [t]) for s, t in valid])
