"""Alignment read off attention: where each output token looks, and how monotonic that is.

For G2P and transliteration a good map walks the source left to right, so the
share of steps whose argmax does not move left measures it; for translation the
argmax pairs are the model's word alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Alignment:
    argmax: list[int]  # source position each output step attends to most
    monotonic: float  # share of steps (after the first) whose argmax does not move left
    entropy: float  # mean entropy of the attention rows in nats: 0 is one-hot, ln(S) is uniform

    def describe(self, src_tokens: list[str], tgt_tokens: list[str]) -> str:
        pairs = " ".join(f"{t}<-{src_tokens[j]}" for t, j in zip(tgt_tokens, self.argmax))
        words = self.argmax[:-1] if tgt_tokens and tgt_tokens[-1] == "</s>" else self.argmax  # </s> looks anywhere
        if len(words) >= 3 and len(src_tokens) >= 3 and len(set(words)) == 1:  # not monotonic: stuck
            order = f"every step on one source token, {src_tokens[words[0]]!r} (not aligned yet)"
        else:
            order = f"{self.monotonic:.0%} monotonic"
        return (f"alignment: {order}, mean entropy {self.entropy:.2f} nats "
                f"(uniform would be {np.log(len(src_tokens)):.2f}); argmax: {pairs}")


def alignment(cross: np.ndarray) -> Alignment:
    """cross (layers, heads, T, S) or (T, S): averaged over layers and heads first."""
    weights = cross.reshape(-1, *cross.shape[-2:]).mean(0) if cross.ndim > 2 else cross  # (T, S)
    argmax = weights.argmax(-1)
    steps = np.diff(argmax)
    monotonic = float((steps >= 0).mean()) if len(steps) else 1.0
    entropy = max(0.0, float(-(weights * np.log(np.clip(weights, 1e-12, None))).sum(-1).mean()))  # no "-0.00"
    return Alignment(argmax.tolist(), monotonic, entropy)
