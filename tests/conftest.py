"""Shared fixtures: tiny configs and one small trained model reused across tests."""

from __future__ import annotations

import io
import tempfile

import pytest

from attend.config import config_from_dict


def tiny_config(family: str = "transformer", **sections) -> "Config":  # noqa: F821
    """A config for the synthetic reverse task, small enough to train in seconds.

    Precision is fp32 so that a test trains the same model on every processor: `auto` would train in bf16 on
    CPUs with bf16 instructions, and the briefly trained models here are not meant to absorb that difference.
    """
    raw = {
        "data": {"recipe": "reverse", "metric": "accuracy", "synthetic_size": 2000, "synthetic_vocab": 8,
                 "synthetic_max_len": 6},
        "model": {"family": family, "hidden_size": 64, "embed_dim": 32, "ff_size": 128, "encoder_layers": 1,
                  "decoder_layers": 1, "heads": 4, "dropout": 0.0, "max_positions": 64},
        "train": {"lr": 0.005, "warmup_steps": 30, "batch_tokens": 800, "max_steps": 60, "eval_every": 30,
                  "label_smoothing": 0.0, "log_every": 10, "valid_max_sentences": 100, "precision": "fp32"},
    }
    for section, values in sections.items():
        raw[section].update(values)
    return config_from_dict(raw)


@pytest.fixture(scope="session")
def trained_folder(tmp_path_factory):
    """A transformer trained briefly on `reverse`; tests must not modify it."""
    from attend.train import train

    folder = tmp_path_factory.mktemp("models") / "reverse"
    train(tiny_config(train={"max_steps": 150, "eval_every": 75}), folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def rnn_folders(tmp_path_factory):
    """Plain and attention RNNs trained for a few steps on `reverse`, by family; tests must not modify them."""
    from attend.train import train

    folders = {}
    for family in ("rnn", "rnn-attention"):
        folders[family] = tmp_path_factory.mktemp("models") / family
        train(tiny_config(family, train={"max_steps": 30, "eval_every": 30}), folders[family], progress=False)
    return folders


def stdin_of(data: bytes) -> io.TextIOWrapper:
    """A standard input with a real file behind it, as a shell's `< file` gives."""
    f = tempfile.TemporaryFile()
    f.write(data)
    f.seek(0)
    return io.TextIOWrapper(f)
