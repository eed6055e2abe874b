"""Synthetic tasks for tests and demos: copy or reverse a sequence of symbols.

Small, learnable in seconds, and with one right answer, so a test can demand
near-perfect accuracy.
"""

from __future__ import annotations

import random

from attend.recipes import Task


def make_pairs(kind: str, count: int, vocab: int, max_len: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    symbols = [chr(ord("a") + i) if i < 26 else f"s{i}" for i in range(vocab)]
    pairs = []
    for _ in range(count):
        seq = [rng.choice(symbols) for _ in range(rng.randint(1, max_len))]
        out = seq[::-1] if kind == "reverse" else seq
        pairs.append((" ".join(seq), " ".join(out)))
    return pairs


def load(kind: str, size: int, vocab: int, max_len: int) -> Task:
    train = make_pairs(kind, size, vocab, max_len, seed=1)
    valid = make_pairs(kind, max(100, size // 20), vocab, max_len, seed=2)
    return Task(kind, train, [(s, [t]) for s, t in valid])
