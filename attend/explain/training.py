"""Pictures to watch while a model trains: loss and validation curves, and attention taking shape.

At every validation the trainer calls `after_validation`: `curves.png` is
redrawn from metrics.jsonl, and the attention of the first validation sentence
is saved as pictures/attention-step-NNNNNN.png, so a user can flip through the
files and see alignment form. With TensorBoard on, the same numbers and
pictures go to an event file in tensorboard/ as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attend.checkpoint import LoadedModel  # noqa: E402
from attend.errors import AttendError  # noqa: E402
from attend.explain.heatmap import plot_map  # noqa: E402
from attend.explain.trace import trace  # noqa: E402


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """Training records and validation records of a metrics.jsonl file."""
    train, valid = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        (valid if "valid" in record else train).append(record)
    return train, valid


def plot_curves(metrics: Path, metric: str, path: Path) -> Path:
    """Training loss and validation loss (left), the validation metric (right), against steps."""
    train, valid = read_metrics(metrics)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss (with label smoothing)", lw=1)
    left.plot([r["step"] for r in valid], [r["valid"]["loss"] for r in valid], "o-", label="validation loss (cross-entropy)", ms=3)
    left.set_xlabel("step")
    left.legend(fontsize=8)
    if metric != "loss":
        right.plot([r["step"] for r in valid], [r["valid"].get(metric) for r in valid], "o-", color="C2", ms=3)
    right.set_xlabel("step")
    right.set_title(f"validation {metric}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class TrainingPictures:
    """Owns the pictures and (optionally) the TensorBoard writer of one training run."""

    def __init__(self, folder: Path, metric: str, sentence: str | None, tensorboard: bool = False,
                 draw: bool = True):
        self.folder, self.metric, self.sentence, self.draw = folder, metric, sentence, draw
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise AttendError("train.tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(folder / "tensorboard"))

    def training_record(self, record: dict) -> None:
        if self.writer is not None:
            for name in ("loss", "lr", "tokens_per_s"):
                self.writer.add_scalar(f"train/{name}", record[name], record["step"])

    def after_validation(self, step: int, result: dict, loaded: LoadedModel) -> None:
        if self.writer is not None:
            for name, value in result.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"valid/{name}", value, step)
            self.writer.flush()
        if not self.draw:
            return
        plot_curves(self.folder / "metrics.jsonl", self.metric, self.folder / "curves.png")
        if self.sentence is None or not loaded.model.has_attention:
            return
        t = trace(loaded, self.sentence, label=f"step {step}")
        folder = self.folder / "pictures"
        folder.mkdir(exist_ok=True)
        fig = plot_map(t.cross_average, t.tgt_tokens, t.src_tokens,
                       f"step {step}: {t.source!r} -> {t.output!r}", folder / f"attention-step-{step:06d}.png")
        if self.writer is not None:
            self.writer.add_figure("attention", fig, step)
            self.writer.flush()
        plt.close(fig)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
