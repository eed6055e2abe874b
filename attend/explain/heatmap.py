"""Attention heatmaps: target tokens down, source tokens across, one cell per weight.

Every map shares one colour scale, weight 0 to 1 with its colour bar, so a
diffuse head looks diffuse and heads can be compared. Figures grow with the
sentence (a quarter inch per token) so every tick label stays readable up to
about 60 tokens. matplotlib runs headless (Agg), and tokens and titles are drawn
as plain text: a "$" in an input is not the start of a formula.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import functools  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CELL = 0.25  # inches per token
PANEL_MAX = 12.0  # inches per panel of a head grid at most (a 9-panel row stays far below matplotlib's 2**16 pixels)
CMAP = "Blues"


def plain_text(draw):
    """Run `draw` with matplotlib's math parsing off, so text with "$" in it is drawn as it is."""
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)
    return drawn


def draw_map(ax, weights: np.ndarray, rows: list[str], cols: list[str], title: str = "",
             labels: tuple[bool, bool] = (True, True), fontsize: float = 8) -> None:
    """One (rows, cols) weight matrix on `ax`, with the tokens as tick labels; returns the image (for a colour bar)."""
    image = ax.imshow(weights, cmap=CMAP, vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    ax.set_xticks(range(len(cols)) if labels[0] else [], cols if labels[0] else [], rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(rows)) if labels[1] else [], rows if labels[1] else [], fontsize=fontsize)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return image


@plain_text
def plot_map(weights: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path | None = None,
             axis_names: tuple[str, str] = ("output", "source")):
    """A single heatmap figure, saved to `path` when given; returns the figure. `axis_names`: (rows, columns)."""
    fig, ax = plt.subplots(figsize=(max(3.5, CELL * len(cols) + 2.4), max(3.0, CELL * len(rows) + 1.6)))
    fig.colorbar(draw_map(ax, weights, rows, cols, title), ax=ax, shrink=0.6, label="attention weight")
    ax.set_xlabel(axis_names[1], fontsize=8)
    ax.set_ylabel(axis_names[0], fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


@plain_text
def plot_head_grid(maps: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path | None = None):
    """maps (layers, heads, rows, cols): one heatmap per layer and head, then each layer's head-average."""
    layers, heads = maps.shape[:2]
    tokens = max(len(rows), len(cols))
    size = min(max(1.6, CELL * 0.6 * tokens + 0.8), PANEL_MAX)  # capped: a long input still makes a figure
    readable = (size - 0.8) * 72 / tokens >= 6  # points per token: below that the labels would overlap
    fig, axes = plt.subplots(layers, heads + 1, figsize=(size * (heads + 1) + 0.8, size * layers + 0.6), squeeze=False,
                             layout="constrained")  # makes room for the colour bar, as tight_layout cannot
    for layer in range(layers):
        for head in range(heads + 1):
            weights = maps[layer].mean(0) if head == heads else maps[layer, head]
            name = "head average" if head == heads else f"head {head + 1}"
            image = draw_map(axes[layer, head], weights, rows, cols, f"layer {layer + 1}, {name}",
                             labels=(readable and layer == layers - 1, readable and head == 0), fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


@plain_text
def plot_side_by_side(panels: list[tuple[str, np.ndarray | None, list[str], list[str]]], path: Path):
    """(title, weights or None, rows, cols) per model in one row: `explain --compare`."""
    width = sum(max(3.5, CELL * len(cols) + 1.8) for _, _, _, cols in panels)
    height = max(max(3.0, CELL * len(rows) + 1.8) for _, _, rows, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, height), squeeze=False)
    for ax, (title, weights, rows, cols) in zip(axes[0], panels):
        if weights is None:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{title}\n\nno attention: the decoder sees only\nthe encoder's final state",
                    ha="center", va="center", fontsize=9, wrap=True)
        else:
            image = draw_map(ax, weights, rows, cols, title)
    fig.tight_layout()
    if any(weights is not None for _, weights, _, _ in panels):
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.6, label="attention weight")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
