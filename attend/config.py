"""Typed configuration: YAML in, validated dataclasses out, one-line errors.

A config has three sections, `data`, `model` and `train`, each a dataclass
below. Unknown or misspelled keys, wrong types and values outside their allowed
set are reported with the file and the dotted key (`model.atention`), plus the
closest valid key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from attend.errors import AttendError

FAMILIES = ("rnn", "rnn-attention", "transformer")
TOKENIZERS = ("char", "word", "subword")
METRICS = ("wer", "per", "bleu", "chrf", "accuracy", "loss")
RECIPES = ("g2p-cmudict", "reverse", "copy")  # built-in tasks (attend/recipes); file corpora need none
MAX_SEED = 2 ** 63 - 1  # the largest seed that train.seed and --seed take: a signed 64-bit number


@dataclass
class DataConfig:
    """Where the parallel text comes from and how it becomes tokens.

    Either a built-in `recipe` (g2p-cmudict, reverse, copy) or files: a source
    and a target file per split (plain or .gz), or one TSV file per split
    (`train_src` only, ending in .tsv, with source<TAB>target per line).
    """

    recipe: Optional[str] = None
    data_dir: Optional[str] = None  # relative corpus paths are read from here (attend train --data-dir)
    train_src: Optional[str] = None
    train_tgt: Optional[str] = None
    valid_src: Optional[str] = None
    valid_tgt: Optional[str] = None
    src_tokenizer: str = "word"
    tgt_tokenizer: str = "word"
    src_lowercase: bool = False
    subword_vocab_size: int = 8000
    joint_subwords: bool = False  # one subword model (and vocabulary) for both sides, e.g. en-de
    min_freq: int = 1
    max_len: int = 200
    metric: str = "bleu"
    synthetic_size: int = 5000
    synthetic_vocab: int = 10
    synthetic_max_len: int = 8

    def validate(self, where: str) -> None:
        _one_of(self.src_tokenizer, TOKENIZERS, f"{where}: data.src_tokenizer")
        _one_of(self.tgt_tokenizer, TOKENIZERS, f"{where}: data.tgt_tokenizer")
        _one_of(self.metric, METRICS, f"{where}: data.metric")
        if self.recipe is not None:
            _one_of(self.recipe, RECIPES, f"{where}: data.recipe")
        if self.joint_subwords and (not self.src_tokenizer == self.tgt_tokenizer == "subword" or self.src_lowercase):
            raise AttendError(f"{where}: data.joint_subwords needs src_tokenizer and tgt_tokenizer both 'subword' "
                              "and src_lowercase false (one model serves both sides)")
        if self.recipe is None and self.train_src is None:
            raise AttendError(f"{where}: data needs either 'recipe' or 'train_src' (and 'train_tgt' unless it is a .tsv file)")
        _positive(self, ("subword_vocab_size", "min_freq", "max_len", "synthetic_size", "synthetic_vocab", "synthetic_max_len"), f"{where}: data")


@dataclass
class ModelConfig:
    """One of the three families and its sizes.

    `hidden_size` is the RNN state size, or d_model for the Transformer;
    `embed_dim` applies to the RNN families (the Transformer embeds in d_model).
    """

    family: str = "transformer"
    embed_dim: int = 256
    hidden_size: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    # RNN families
    cell: str = "gru"
    bidirectional: bool = True
    attention: str = "general"
    input_feeding: bool = False
    # Transformer
    heads: int = 4
    ff_size: int = 1024
    norm: str = "pre"
    positions: str = "sinusoidal"
    tie_embeddings: bool = True
    max_positions: int = 512

    def validate(self, where: str) -> None:
        _one_of(self.family, FAMILIES, f"{where}: model.family")
        _one_of(self.cell, ("gru", "lstm"), f"{where}: model.cell")
        _one_of(self.attention, ("dot", "general", "concat", "bahdanau"), f"{where}: model.attention")
        _one_of(self.norm, ("pre", "post"), f"{where}: model.norm")
        _one_of(self.positions, ("sinusoidal", "learned"), f"{where}: model.positions")
        _positive(self, ("embed_dim", "hidden_size", "encoder_layers", "decoder_layers", "heads", "ff_size", "max_positions"), f"{where}: model")
        if not 0.0 <= self.dropout < 1.0:
            raise AttendError(f"{where}: model.dropout must be in [0, 1), got {self.dropout}")
        if self.family == "transformer" and self.hidden_size % self.heads:
            raise AttendError(f"{where}: model.hidden_size ({self.hidden_size}) must be divisible by model.heads ({self.heads})")
        if self.family != "transformer" and self.bidirectional and self.hidden_size % 2:
            raise AttendError(f"{where}: model.hidden_size must be even for a bidirectional encoder (each direction gets half)")


@dataclass
class TrainConfig:
    """The optimisation recipe and when to stop, validate and save."""

    optimizer: str = "adam"
    lr: float = 1e-3
    betas: tuple = (0.9, 0.98)
    weight_decay: float = 0.0
    schedule: str = "inverse_sqrt"
    warmup_steps: int = 1000
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    batch_tokens: int = 4096
    max_steps: int = 100000
    max_epochs: int = 1000
    max_minutes: float = 0.0
    eval_every: int = 1000
    valid_max_sentences: int = 1000
    patience: int = 10
    keep_last: int = 2
    log_every: int = 50
    seed: int = 1
    threads: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: auto picks bf16 only where it is measured faster
    pictures: bool = True  # curves.png and attention on one validation sentence at every validation
    tensorboard: bool = False  # also log to FOLDER/tensorboard (needs the tensorboard package)

    def validate(self, where: str) -> None:
        _one_of(self.optimizer, ("adam", "adamw"), f"{where}: train.optimizer")
        _one_of(self.schedule, ("constant", "inverse_sqrt", "cosine"), f"{where}: train.schedule")
        _one_of(self.precision, ("auto", "fp32", "bf16", "fp16"), f"{where}: train.precision")
        _positive(self, ("lr", "batch_tokens", "max_steps", "max_epochs", "eval_every", "valid_max_sentences", "patience", "keep_last", "log_every"), f"{where}: train")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise AttendError(f"{where}: train.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if len(self.betas) != 2 or not all(_is_number(b) and 0.0 <= b < 1.0 for b in self.betas):
            raise AttendError(f"{where}: train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        for name in ("weight_decay", "warmup_steps", "clip_norm", "max_minutes", "threads"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):  # NaN compares False
                raise AttendError(f"{where}: train.{name} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise AttendError(f"{where}: train.seed must be from 0 to 2**63 - 1, got {self.seed}")


@dataclass
class Config:
    """A whole experiment: what to read, what to build, how to train it."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self, where: str = "config") -> "Config":
        self.data.validate(where)
        self.model.validate(where)
        self.train.validate(where)
        return self

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out


def length_limit(config: Config) -> int:
    """The longest sequence (tokens incl. </s>) trained on: data.max_len, capped by the model's positions."""
    return min(config.data.max_len, config.model.max_positions)


def sequence_limit(config: Config) -> int:
    """The longest sequence (tokens with </s>) a trained model reads or writes: model.max_positions, except
    that learned positions past the training limit (data.max_len) never received a gradient and are not used."""
    if config.model.family == "transformer" and config.model.positions == "learned":
        return min(config.data.max_len, config.model.max_positions)
    return config.model.max_positions


def config_from_dict(raw: Any, where: str = "config") -> Config:
    """Build and validate a Config from parsed YAML/JSON, naming any bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise AttendError(f"{where}: expected a mapping with sections data/model/train, got {type(raw).__name__}")
    return _build(Config, raw, where, "").validate(where)


def load_config(path: str | Path) -> Config:
    """Read a YAML config file; every problem becomes a one-line AttendError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AttendError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise AttendError(f"{path}: is a folder; give the config's YAML file") from None
    except UnicodeDecodeError as e:
        raise AttendError(f"{path}: not valid UTF-8 at byte {e.start}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AttendError(f"{path}:{line} malformed YAML: {problem}") from None
    return config_from_dict(raw, str(path))


def with_overrides(config: Config, overrides: list[str], where: str = "--set") -> Config:
    """A copy of `config` with each "section.key=value" applied (value read as YAML), validated again.

    For sweeps and one-off changes without editing the file: `--set model.dropout=0.3`.
    """
    raw = config.to_dict()
    for item in overrides:
        dotted, sep, text = item.partition("=")
        parts = dotted.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise AttendError(f"{where}: expected SECTION.KEY=VALUE (e.g. model.dropout=0.3), got {item!r}")
        section, key = parts
        if section not in raw:
            raise AttendError(f"{where}: unknown section '{section}' in {item!r}; valid: {', '.join(raw)}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise AttendError(f"{where}: value of {dotted} is not valid YAML: {text!r}") from None
        raw[section][key] = value
    return config_from_dict(raw, where)


def config_to_yaml(config: Config) -> str:
    """The YAML text of a config, as saved in a model folder."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


_SECTION_KEYS = {name: {f.name for f in dataclasses.fields(section)}
                 for name, section in typing.get_type_hints(Config).items()
                 if dataclasses.is_dataclass(section)}  # "train": {"lr", ...}, to point at a misplaced key


def _build(cls, raw: dict, where: str, prefix: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            elsewhere = [f"{section}.{key}" for section, keys in _SECTION_KEYS.items()
                         if key in keys and f"{section}." != prefix]
            hint = (f"; it is a key of another section: '{elsewhere[0]}'" if elsewhere and prefix else
                    f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(fields)}")
            raise AttendError(f"{where}: unknown key '{dotted}'{hint}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise AttendError(f"{where}: '{dotted}' must be a mapping")
            values[key] = _build(hint, value, where, f"{dotted}.")
        else:
            values[key] = _coerce(value, hint, where, dotted)
    return cls(**values)


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _coerce(value, hint, where: str, dotted: str):
    """Check a scalar against its annotation; ints, and numbers written like 5e-4, are accepted for floats."""
    optional = typing.get_origin(hint) is typing.Union
    base = [a for a in typing.get_args(hint) if a is not type(None)][0] if optional else hint
    if value is None:
        if optional:
            return None
        raise AttendError(f"{where}: '{dotted}' must not be empty")
    if base is tuple:
        if not isinstance(value, (list, tuple)):
            raise AttendError(f"{where}: '{dotted}' must be a list, got {value!r}")
        return tuple(value)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string; a number is meant
    if base is int and isinstance(value, bool) or not isinstance(value, base):
        raise AttendError(f"{where}: '{dotted}' must be {base.__name__}, got {value!r}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _one_of(value, allowed, what: str) -> None:
    if value not in allowed:
        raise AttendError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _positive(section, names, what: str) -> None:
    for name in names:
        if not getattr(section, name) > 0 or not math.isfinite(getattr(section, name)):  # NaN compares False
            raise AttendError(f"{what}.{name} must be above 0, got {getattr(section, name)}")
