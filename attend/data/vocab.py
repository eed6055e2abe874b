"""Token <-> id mapping with the four specials every seq2seq model needs."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


class Vocab:
    """A fixed list of tokens; ids 0-3 are <pad>, <unk>, <s>, </s>."""

    def __init__(self, tokens: Iterable[str]):
        self.itos = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_freq: int = 1) -> "Vocab":
        """Keep tokens seen at least `min_freq` times, most frequent first."""
        counts = Counter(t for s in sentences for t in s)
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids for tokens; unknown ones, and text that spells a special ("</s>", "<pad>"), become <unk>: only
        code places <pad>, <s> and </s>, so such text cannot end or mask a sentence."""
        return [i if i >= len(SPECIALS) else UNK_ID for i in (self.stoi.get(t, UNK_ID) for t in tokens)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids, stopping at </s> and skipping <pad>/<s>."""
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(self.itos[i])
        return out

    def to_list(self) -> list[str]:
        return list(self.itos)
