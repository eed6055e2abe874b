"""Pictures of how a model attends: heatmaps, the decoding animation, an interactive page.

`explain` traces one input through one or more trained models and writes the
pictures into a folder; every picture is drawn from a `Trace`, which is built
over the shared model interface, so all three families get the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attend.checkpoint import LoadedModel
from attend.errors import AttendError
from attend.explain.alignment import alignment
from attend.explain.trace import Trace, trace

MAP_NAMES = {"cross": "cross_attention", "encoder": "encoder_self_attention", "decoder": "decoder_self_attention"}
MAP_TITLES = {"cross": "cross-attention", "encoder": "encoder self-attention", "decoder": "decoder self-attention"}


@dataclass
class Explained:
    traces: list[Trace]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per model: its output and alignment


def write_heatmaps(t: Trace, out: Path) -> list[Path]:
    """The head-averaged cross-attention map, and per-layer/head grids where there are several."""
    import matplotlib.pyplot as plt

    from attend.explain.heatmap import plot_head_grid, plot_map

    written = []
    rows_cols = {"cross": (t.tgt_tokens, t.src_tokens), "encoder": (t.src_tokens, t.src_tokens),
                 "decoder": (t.tgt_tokens, t.tgt_tokens)}
    for name, maps in t.maps.items():  # (layers, heads, queries, keys)
        rows, cols = rows_cols[name]
        title = f"{t.label}: {MAP_TITLES[name]}"
        if name == "cross":
            path = out / f"{MAP_NAMES[name]}.png"
            plt.close(plot_map(t.cross_average, rows, cols, title + " (average of layers and heads)"
                               if maps.shape[0] * maps.shape[1] > 1 else title, path))
            written.append(path)
        if maps.shape[0] * maps.shape[1] > 1:
            path = out / f"{MAP_NAMES[name]}{'_heads' if name == 'cross' else ''}.png"
            plt.close(plot_head_grid(maps, rows, cols, title, path))
            written.append(path)
    return written


def describe(t: Trace) -> str:
    line = f"{t.label}: {t.source!r} -> {t.output!r} (log-prob {t.score:.2f})"
    if t.cross is None:
        return line + "; no attention: the decoder sees only the encoder's final state"
    return line + "\n  " + alignment(t.cross).describe(t.src_tokens, t.tgt_tokens)


def explain(models: list[LoadedModel], text: str, out: Path, animate: bool = False, html: bool = False,
            beam_size: int = 1, alpha: float = 0.0, top_k: int = 5, fps: float = 1.5) -> Explained:
    """Trace `text` through each model and write its pictures into `out` (a subfolder per model when comparing)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AttendError(f"{out}: is a file; --out takes the folder the pictures go into")
    labels = unique_labels(models)
    result = Explained([trace(m, text, beam_size, alpha, top_k, label=label) for m, label in zip(models, labels)])
    for t in result.traces:
        folder = out / t.label if len(models) > 1 else out
        folder.mkdir(parents=True, exist_ok=True)
        result.files += write_heatmaps(t, folder)
        if animate:
            from attend.explain.animate import animate as write_animation

            result.files += write_animation(t, folder / "decoding.gif", fps=fps)
        result.notes.append(describe(t))
    if len(models) > 1:
        from attend.explain.heatmap import plot_side_by_side

        panels = [(t.family if t.family.startswith(t.label + " ") else f"{t.label}\n{t.family}",
                   t.cross_average, t.tgt_tokens, t.src_tokens)
                  for t in result.traces]
        result.files.append(plot_side_by_side(panels, out / "compare.png"))
    if html:
        from attend.explain.page import write_page

        result.files.append(write_page(result.traces, out / "explain.html"))
    return result


def unique_labels(models: list[LoadedModel]) -> list[str]:
    """Folder names, numbered where two are the same, to title and file each model's pictures."""
    names = [m.path.name if m.path else m.config.model.family for m in models]
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
