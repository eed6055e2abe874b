"""Text <-> token lists: characters, whitespace words, or learned subwords.

Every tokenizer sees text in one normal form (Unicode NFC, runs of whitespace
as one space), so "Männer" typed with a combining umlaut (as macOS writes it) is
the "Männer" of the training data. Past that, every tokenizer round-trips
(`decode(encode(text)) == normalize(text)`, up to case when it lowercases), so
`attend translate` takes raw text and gives raw text back. Subword models are
trained by attend with sentencepiece and stored as bytes inside the model
folder: no download, ever.
"""

from __future__ import annotations

import io
import unicodedata
from typing import Iterable

from attend.errors import AttendError

SPACE = "\u2581"  # the visible space symbol sentencepiece also uses


def normalize(text: str) -> str:
    """NFC, and whitespace runs (tabs, no-break spaces) as one space: the form every tokenizer reads."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class CharTokenizer:
    """One token per character; spaces become the symbol '▁'."""

    kind = "char"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        text = normalize(text)
        if self.lowercase:
            text = text.lower()
        return [SPACE if c == " " else c for c in text]

    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens).replace(SPACE, " ").strip()

    def state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}


class WordTokenizer(CharTokenizer):
    """Tokens are whitespace-separated words (phonemes for G2P, pre-tokenized text)."""

    kind = "word"

    def encode(self, text: str) -> list[str]:
        text = normalize(text)
        return (text.lower() if self.lowercase else text).split()

    def decode(self, tokens: list[str]) -> str:
        return " ".join(tokens)


class SubwordTokenizer:
    """A sentencepiece unigram model trained on the training corpus.

    sentencepiece's own normalisation is left off (rule `identity`): its default, NFKC, rewrites "…" as "...",
    "½" as "1⁄2" and "ﬁ" as "fi", so outputs would differ from references written the usual way. Models
    trained before keep the rule saved in their sentencepiece model."""

    kind = "subword"

    def __init__(self, model_bytes: bytes, lowercase: bool = False):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.lowercase = lowercase
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int, lowercase: bool = False) -> "SubwordTokenizer":
        import sentencepiece as spm

        lines = [(line.lower() if lowercase else line) for line in map(normalize, lines) if line]
        buffer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buffer, vocab_size=vocab_size,
                model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2, normalization_rule_name="identity",
            )
        except RuntimeError as e:
            reason = str(e).splitlines()[-1]
            raise AttendError(f"subword training failed: {reason}; {_subword_advice(reason)}") from None
        return cls(buffer.getvalue(), lowercase)

    def encode(self, text: str) -> list[str]:
        text = normalize(text)
        return self.sp.encode(text.lower() if self.lowercase else text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return self.sp.decode_pieces(tokens)

    def state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}


Tokenizer = CharTokenizer | WordTokenizer | SubwordTokenizer


def _subword_advice(reason: str) -> str:
    """What to change after sentencepiece's training error `reason`."""
    if "Increase vocab_size" in reason:  # fewer pieces than the corpus has characters
        return "raise data.subword_vocab_size"
    if "sentences_.empty()" in reason:  # sentencepiece skips lines over 4,192 bytes
        return "no training line is short enough for sentencepiece (4,192 bytes at most); check the corpus files"
    return "lower data.subword_vocab_size"


def build_tokenizer(kind: str, lines: list[str], lowercase: bool = False, vocab_size: int = 8000) -> Tokenizer:
    """A tokenizer of the given kind, trained on `lines` where it learns anything."""
    if kind == "char":
        return CharTokenizer(lowercase)
    if kind == "word":
        return WordTokenizer(lowercase)
    return SubwordTokenizer.train(lines, vocab_size, lowercase)


def tokenizer_from_state(state: dict, model_bytes: bytes | None = None) -> Tokenizer:
    """Rebuild a saved tokenizer (the inverse of `.state()` plus the subword model bytes)."""
    kind = state.get("kind")
    if kind == "char":
        return CharTokenizer(state.get("lowercase", False))
    if kind == "word":
        return WordTokenizer(state.get("lowercase", False))
    if kind == "subword":
        if model_bytes is None:
            raise AttendError("subword tokenizer: its sentencepiece model file is missing from the model folder")
        return SubwordTokenizer(model_bytes, state.get("lowercase", False))
    raise AttendError(f"unknown tokenizer kind {kind!r} in the model folder")
