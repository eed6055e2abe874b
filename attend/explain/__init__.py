"""Pictures of how a model attends: heatmaps, the decoding animation, an interactive page.

`explain` traces one input through one or more trained models and writes the
pictures into a folder; every picture is drawn from a `Trace`, which is built
over the shared model interface, so all three families get the same pictures.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from attend.checkpoint import LoadedModel
from attend.errors import AttendError
from attend.explain.alignment import alignment
from attend.explain.trace import Trace, trace
from attend.tuning import resolve_search, saved_search

MAP_NAMES = {"cross": "cross_attention", "encoder": "encoder_self_attention", "decoder": "decoder_self_attention"}
MAP_TITLES = {"cross": "cross-attention", "encoder": "encoder self-attention", "decoder": "decoder self-attention"}


@dataclass
class Explained:
    traces: list[Trace]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per model: its output and alignment


def map_axes(t: Trace) -> dict[str, tuple[list[str], list[str], str, str]]:
    """Per map: the tokens down (queries) and across (keys), and the names of the two axes."""
    return {"cross": (t.tgt_tokens, t.src_tokens, "output", "source"),
            "encoder": (t.src_tokens, t.src_tokens, "source (query)", "source (key)"),
            "decoder": (t.tgt_tokens, t.decoder_inputs, "output", "decoder input")}


def write_heatmaps(t: Trace, out: Path) -> list[Path]:
    """Each map averaged over layers and heads, and per-layer/head grids where there are several."""
    import matplotlib.pyplot as plt

    from attend.explain.heatmap import plot_head_grid, plot_map

    written = []
    for name, maps in t.maps.items():  # (layers, heads, queries, keys)
        rows, cols, row_name, col_name = map_axes(t)[name]
        title = f"{t.label}: {MAP_TITLES[name]}"
        several = maps.shape[0] * maps.shape[1] > 1
        if name == "cross" or not several:  # self-attention with several heads is drawn by the grid alone
            path = out / f"{MAP_NAMES[name]}.png"
            plt.close(plot_map(maps.mean(axis=(0, 1)), rows, cols, title + " (average of layers and heads)"
                               if several else title, path, axis_names=(row_name, col_name)))
            written.append(path)
        if several:
            path = out / f"{MAP_NAMES[name]}{'_heads' if name == 'cross' else ''}.png"
            plt.close(plot_head_grid(maps, rows, cols, title, path))
            written.append(path)
    return written


def describe(t: Trace) -> str:
    line = f"{t.label}: {t.source!r} -> {t.output!r} (log-prob {t.score:.2f})"
    if t.forced_end:
        line += "; it reached the length limit, where only </s> is allowed"
    if t.cross is None:
        return line + "; no attention: the decoder sees only the encoder's final state"
    return line + "\n  " + alignment(t.cross).describe(t.src_tokens, t.tgt_tokens)


def explain(models: list[LoadedModel], text: str, out: Path, animate: bool = False, html: bool = False,
            beam_size: int | None = None, alpha: float | None = None, top_k: int = 5, fps: float = 1.5) -> Explained:
    """Trace `text` through each model and write its pictures into `out` (a subfolder per model when comparing).

    Each model searches as `translate` would: with `beam_size` and `alpha` where given, else with its tuned
    search.json, else greedily, so the pictures show the output the model gives. The pictures are drawn aside
    and moved in at the end: a failure leaves `out` as it was, and a file there that an earlier explain did
    not write is never replaced.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AttendError(f"{out}: is a file; --out takes the folder the pictures go into")
    labels = unique_labels(models)
    needed = beam_size is None or (alpha is None and beam_size > 1)  # what search.json could still say
    searches = [resolve_search(saved_search(m.path) if needed else {}, beam_size, alpha) for m in models]
    result = Explained([trace(m, text, beam, model_alpha, top_k, label=label)
                        for m, (beam, model_alpha), label in zip(models, searches, labels)])
    make_folder(out)
    try:
        staging = Path(tempfile.mkdtemp(dir=out, prefix=".explain-"))
    except OSError as e:
        raise AttendError(f"{out}: cannot write the pictures there ({e.strerror}); choose another --out") from None
    try:
        drawn = [p.relative_to(staging) for p in draw(result, staging, len(models) > 1, animate, html, fps)]
        replace_earlier_pictures(out, staging, drawn)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.files = [out / name for name in drawn]
    return result


def draw(result: Explained, out: Path, comparing: bool, animate: bool, html: bool, fps: float) -> list[Path]:
    """Every picture of `result`'s traces, written into `out`; their paths."""
    files = []
    for t in result.traces:
        folder = make_folder(out / t.label if comparing else out)
        files += write_heatmaps(t, folder)
        if animate:
            from attend.explain.animate import animate as write_animation

            files += write_animation(t, folder / "decoding.gif", fps=fps, warn=result.notes.append)
        result.notes.append(describe(t))
    if comparing:
        from attend.explain.heatmap import plot_side_by_side

        panels = [(t.family if t.family.startswith(t.label + " ") else f"{t.label}\n{t.family}",
                   t.cross_average, t.tgt_tokens, t.src_tokens)
                  for t in result.traces]
        files.append(plot_side_by_side(panels, out / "compare.png"))
    if html:
        from attend.explain.page import write_page

        files.append(write_page(result.traces, out / "explain.html"))
    return files


WRITTEN = ".explain-files.json"  # in --out: what the last explain wrote there, so the next can replace it


def replace_earlier_pictures(out: Path, staging: Path, drawn: list[Path]) -> None:
    """Move the `drawn` files (relative paths) from `staging` into `out`, in place of the files the last
    explain into `out` wrote (as its list says), so the folder never mixes two inputs' pictures. Any other
    file in the way is the user's: that is an error, raised before anything moves."""
    earlier = earlier_pictures(out)
    for name in drawn:
        if (out / name).exists() and name.as_posix() not in earlier:
            raise AttendError(f"{out / name}: exists, and no earlier explain wrote it; move it, or choose another "
                              "--out")
    for name in earlier:
        path = out / name
        if path.resolve().is_relative_to(out.resolve()) and path.is_file():
            path.unlink()
    for name in drawn:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, out / name)
    (out / WRITTEN).write_text(json.dumps([name.as_posix() for name in drawn], indent=1), encoding="utf-8")


def earlier_pictures(out: Path) -> list[str]:
    """The names the last explain into `out` listed, or none."""
    try:
        earlier = json.loads((out / WRITTEN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(name) for name in earlier] if isinstance(earlier, list) else []


def make_folder(folder: Path) -> Path:
    """`folder`, created with its parents, or a one-line error saying what is in the way."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AttendError(f"{folder}: cannot create the pictures' folder ({e.strerror}); choose another --out") from None
    return folder


def unique_labels(models: list[LoadedModel]) -> list[str]:
    """Folder names, numbered where two are the same, to title and file each model's pictures."""
    names = [m.path.resolve().name if m.path else m.config.model.family for m in models]  # "." has a name too
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
