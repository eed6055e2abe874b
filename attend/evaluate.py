"""Scoring outputs against references: WER/PER for G2P-like tasks, BLEU/chrF for translation.

References come as a list of acceptable answers per input (CMUdict words can
have several pronunciations). WER and PER follow the standard G2P definitions
(Yao & Zweig 2015): a word is an error when the prediction matches none of its
references; PER is the edit distance to the closest reference, summed over the
set, divided by the summed lengths of those closest references. When two
references are equally close, the shorter counts, which gives the higher PER.
"""

from __future__ import annotations

import unicodedata

from rapidfuzz.distance import Levenshtein

HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "accuracy": True, "wer": False, "per": False, "loss": False}


def wer_per(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """Word error rate and phoneme (token) error rate, in percent, over whitespace tokens."""
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need one hypothesis per reference set, got {len(hyps)} and {len(refs)}")
    word_errors, edits, length = 0, 0, 0
    for hyp, alternatives in zip(hyps, refs):
        hyp_tokens = hyp.split()
        distances = [(Levenshtein.distance(hyp_tokens, ref.split()), len(ref.split())) for ref in alternatives]
        best_distance, best_length = min(distances)
        word_errors += best_distance > 0
        edits += best_distance
        length += best_length
    return {"wer": 100.0 * word_errors / len(hyps), "per": 100.0 * edits / max(length, 1)}


def accuracy(hyps: list[str], refs: list[list[str]]) -> float:
    """Share of outputs equal (up to whitespace) to one of their references, in percent."""
    hits = sum(" ".join(h.split()) in {" ".join(r.split()) for r in alts} for h, alts in zip(hyps, refs))
    return 100.0 * hits / max(len(hyps), 1)


def bleu_chrf(hyps: list[str], refs: list[list[str]]) -> dict:
    """sacreBLEU BLEU and chrF on detokenized text, with their signatures."""
    import sacrebleu

    depth = max(len(r) for r in refs)
    streams = [[alts[i] if i < len(alts) else alts[0] for alts in refs] for i in range(depth)]
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hyps, streams), chrf.corpus_score(hyps, streams)
    return {
        "bleu": b.score, "chrf": c.score, "length_ratio": b.sys_len / max(b.ref_len, 1),
        "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
    }


def score(metric: str, hyps: list[str], refs: list[list[str]]) -> dict:
    """Every metric that suits a task whose headline metric is `metric`: BLEU/chrF for translation,
    exact match and WER/PER for the rest, and all of them when the headline is the loss, which says
    nothing about the kind of task. Both sides are compared in Unicode NFC, the form attend's outputs come
    in, so a reference written decomposed ("a" + combining umlaut) still matches."""
    hyps = [unicodedata.normalize("NFC", h) for h in hyps]
    refs = [[unicodedata.normalize("NFC", r) for r in alts] for alts in refs]
    result = bleu_chrf(hyps, refs) if metric in ("bleu", "chrf", "loss") else {}
    if metric not in ("bleu", "chrf"):
        result.update(accuracy=accuracy(hyps, refs), **wer_per(hyps, refs))
    return result


def format_table(result: dict, count: int) -> str:
    """A small aligned table of the numeric metrics (signatures printed below it)."""
    names = {"wer": "WER %", "per": "PER %", "accuracy": "exact match %", "bleu": "BLEU", "chrf": "chrF",
             "length_ratio": "length ratio"}
    rows = [(names[k], f"{v:.2f}") for k, v in result.items() if k in names]
    rows.insert(0, ("inputs", str(count)))
    width = max(len(n) for n, _ in rows)
    lines = [f"{n:<{width}}  {v:>8}" for n, v in rows]
    lines += [f"{k.split('_')[0]}: {v}" for k, v in result.items() if k.endswith("signature")]
    return "\n".join(lines)
