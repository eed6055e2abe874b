"""Choosing the beam's length penalty on validation data, and remembering the choice in the model folder.

Beam search prefers short outputs unless scores are normalised by length; the
GNMT penalty's alpha trades that off, and the right value depends on the model
and task, so it is tuned on a validation set (never the test set) and saved
as search.json, which `translate` and `evaluate` then use by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from attend.checkpoint import LoadedModel, atomic_write
from attend.errors import AttendError
from attend.evaluate import HIGHER_IS_BETTER, score
from attend.inference import SearchOptions, Translator
from attend.search import valid_alpha

SEARCH = "search.json"


def tune_alpha(loaded: LoadedModel, sources: list[str], refs: list[list[str]], beam_size: int,
               alphas: list[float], batch_size: int = 64, progress: bool = False,
               metric: str | None = None, on_result: Callable[[float, dict], None] | None = None
               ) -> list[tuple[float, dict]]:
    """The validation scores of beam search for each alpha, in the order given: every metric the task has,
    `metric` too when it is not one of them, and the count of empty outputs. `on_result(alpha, scores)` hears
    each as it is done."""
    results = []
    for number, alpha in enumerate(alphas, 1):
        translator = Translator(loaded, SearchOptions(beam_size=beam_size, alpha=alpha), batch_size)
        hyps = translator.best(sources, "validation", progress=progress and f"alpha {alpha:g} ({number}/{len(alphas)})")
        scores = score(loaded.config.data.metric, hyps, refs)
        if metric is not None and metric not in scores:
            scores.update(score(metric, hyps, refs))
        scores["empty_outputs"] = sum(not h.strip() for h in hyps)
        results.append((alpha, scores))
        if on_result is not None:
            on_result(alpha, scores)
    return results


def best_alpha(results: list[tuple[float, dict]], metric: str) -> tuple[float, float]:
    """(alpha, score) of the best result by the task's metric; ties, as far as the two decimals printed show,
    go to the smaller alpha: a difference nobody can see is no reason to lengthen the outputs."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    alpha, scores = max(results, key=lambda r: (sign * round(r[1][metric], 2), -r[0]))
    return alpha, scores[metric]


def save_search(folder: Path, beam_size: int, alpha: float, metric: str, value: float, tuned_on: str) -> Path:
    path = Path(folder) / SEARCH
    if Path(tuned_on).is_file():  # a whole path, so that evaluate can tell when it is given the same file
        tuned_on = str(Path(tuned_on).resolve())
    atomic_write(path, json.dumps({"beam": beam_size, "alpha": alpha, "metric": metric, "score": value,
                                   "tuned_on": tuned_on}, indent=1))
    return path


def tuned_on_same_file(saved: dict, source: str) -> bool:
    """Whether `source` is the very file the saved search was tuned on: a score on it is not held out."""
    tuned_on = saved.get("tuned_on", "")
    return bool(tuned_on) and Path(source).is_file() and Path(tuned_on) == Path(source).resolve()


def resolve_search(tuned: dict, beam_size: int | None, alpha: float | None) -> tuple[int, float]:
    """(beam size, alpha) as given, else as `tuned` (a folder's `saved_search`) has them, else greedy: how
    translate, evaluate and explain decide how to search."""
    return (beam_size if beam_size is not None else tuned.get("beam", 1),
            alpha if alpha is not None else tuned.get("alpha", 0.0))


def saved_search(folder: Path | None) -> dict:
    """The tuned beam and alpha of a model folder and the file they were tuned on, or {} when it has none
    (or there is no folder). A damaged search.json is an error: decoding greedily instead would be silent."""
    if folder is None or not (Path(folder) / SEARCH).exists():
        return {}
    path = Path(folder) / SEARCH
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        beam, alpha = int(saved["beam"]), float(saved["alpha"])
        if beam < 1 or not valid_alpha(alpha):
            raise ValueError(f"beam {beam}, alpha {alpha:g}")
        return {"beam": beam, "alpha": alpha, "tuned_on": str(saved.get("tuned_on", ""))}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AttendError(f"{path}: damaged ({e}); run 'attend tune' again, or delete it to decode greedily") from None
