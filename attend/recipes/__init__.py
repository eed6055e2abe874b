"""Where training data comes from: built-in tasks or the user's files.

`load_task(data_config)` returns a `Task`: training pairs, validation and
(where the task has one) test inputs, each with its list of acceptable
references, so scoring handles words with several pronunciations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from attend.config import RECIPES, DataConfig
from attend.data.corpus import read_parallel
from attend.errors import AttendError

Pair = tuple[str, str]
Refs = tuple[str, list[str]]  # an input and every acceptable output


@dataclass
class Task:
    name: str
    train: list[Pair]
    valid: list[Refs]
    test: Optional[list[Refs]] = None


def group_references(pairs: list[Pair]) -> list[Refs]:
    """Inputs in first-seen order, each with all of its distinct outputs."""
    grouped: dict[str, list[str]] = {}
    for src, tgt in pairs:
        alternatives = grouped.setdefault(src, [])
        if tgt not in alternatives:
            alternatives.append(tgt)
    return list(grouped.items())


def corpus_paths(cfg: DataConfig, *names: Optional[str]) -> list[Optional[Path]]:
    """Corpus file names as paths: relative ones are read from data.data_dir when it is set."""
    base = Path(cfg.data_dir).expanduser() if cfg.data_dir else None
    if base is not None and not base.is_dir():
        raise AttendError(f"{base}: data.data_dir is not a folder; give the corpus folder with --data-dir")
    return [None if n is None else (base / n if base is not None and not Path(n).is_absolute() else Path(n))
            for n in names]


def load_task(cfg: DataConfig) -> Task:
    if cfg.recipe == "g2p-cmudict":
        from attend.recipes.g2p_cmudict import load

        lexicon, = corpus_paths(cfg, cfg.train_src)  # an optional lexicon file, read from --data-dir too
        return load(lexicon)
    if cfg.recipe in ("reverse", "copy"):
        from attend.recipes.synthetic import load

        return load(cfg.recipe, cfg.synthetic_size, cfg.synthetic_vocab, cfg.synthetic_max_len)
    if cfg.recipe is not None:
        raise AttendError(f"unknown data.recipe {cfg.recipe!r}; choose {', '.join(RECIPES)}, or give train_src/train_tgt")
    if cfg.valid_src is None:
        raise AttendError("data.valid_src is required with file corpora (validation drives early stopping and keep-best)")
    keys = ("train_src", "train_tgt", "valid_src", "valid_tgt")
    paths = corpus_paths(cfg, *(getattr(cfg, key) for key in keys))
    for key, path in zip(keys, paths):
        if path is not None and not path.is_file():
            where = f"data.data_dir {cfg.data_dir}" if cfg.data_dir else "the current folder (no --data-dir given)"
            raise AttendError(f"{path}: file not found (data.{key}, read from {where})")
    train, valid = read_parallel(*paths[:2]), read_parallel(*paths[2:])
    return Task("files", train, [(s, [t]) for s, t in valid])
