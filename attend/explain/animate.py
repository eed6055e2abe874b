"""The step-by-step picture of decoding, as an animated GIF (and MP4 where ffmpeg is).

Like the classic seq2seq animations: first the encoder reads the input one
token per frame and its states appear under the tokens; then the decoder emits
one token per frame, with lines from the new token to the source states whose
width and shade are that step's attention weights (averaged over layers and
heads), on the same 0-to-1 scale as the heatmaps, so diffuse attention looks
faint. A side panel lists the step's most probable next tokens and, for beam
search, the live beams. Frames: one per source token, then one per output token.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from attend.errors import AttendError  # noqa: E402
from attend.explain.heatmap import plain_text  # noqa: E402
from attend.explain.trace import Trace  # noqa: E402

UNIT = 0.42  # inches per token column
STATE_CELLS = 6  # rows of the little strip that stands for an encoder state
SRC_Y, STATE_Y, TGT_Y = 4.2, 3.0, 0.4


def state_strips(states: np.ndarray, cells: int = STATE_CELLS) -> np.ndarray:
    """(S, d) encoder states -> (S, cells) values in [0, 1]: a glimpse of each state, same scale for all."""
    groups = np.array_split(states, cells, axis=1)
    pooled = np.stack([g.mean(1) for g in groups], axis=1)  # (S, cells)
    spread = np.abs(pooled).max() or 1.0
    return 0.5 + 0.5 * pooled / spread


def beam_prefixes(trace: Trace) -> list[list[tuple[str, float]]]:
    """For every search step, each live beam's whole prefix and score, best first."""
    prefixes, previous = [], [[]]
    for step in trace.beam_steps:
        current = [previous[b["parent"]] + [b["token"]] if b["parent"] < len(previous) else [b["token"]]
                   for b in step.beams]
        prefixes.append([(" ".join(p), b["score"]) for p, b in zip(current, step.beams)])
        previous = current
    return prefixes


class DecodingAnimation:
    """Draws frame `i` of the animation of `trace` on one figure."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.S, self.T = len(trace.src_tokens), len(trace.tgt_tokens)
        self.width = max(self.S, self.T)
        self.weights = trace.cross_average  # (T, S), None without attention
        self.strips = state_strips(trace.states)
        self.beams = beam_prefixes(trace)
        self.cmap = plt.get_cmap("Blues")
        side = 3.4
        self.fig = plt.figure(figsize=(UNIT * self.width + side + 0.6, 4.2))
        main_share = (UNIT * self.width + 0.4) / (UNIT * self.width + side + 0.6)
        self.ax = self.fig.add_axes((0.01, 0.02, main_share - 0.02, 0.86))
        self.side = self.fig.add_axes((main_share, 0.02, 1 - main_share - 0.01, 0.86))
        self.title = self.fig.text(0.01, 0.97, "", fontsize=9, va="top")

    @property
    def frames(self) -> int:
        return self.S + self.T

    def x_src(self, j: int) -> float:
        return j + (self.width - self.S) / 2

    def x_tgt(self, t: int) -> float:
        return t + (self.width - self.T) / 2

    def box(self, x, y, text, face="white", edge="#555", bold=False):
        self.ax.add_artist(Rectangle((x - 0.45, y - 0.35), 0.9, 0.7, facecolor=face, edgecolor=edge, lw=1))
        r, g, b, *_ = matplotlib.colors.to_rgba(face)
        ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"  # readable on dark cells
        self.ax.text(x, y, text, ha="center", va="center", fontsize=8, color=ink,
                     fontweight="bold" if bold else "normal", clip_on=False)

    def draw(self, frame: int):
        ax, trace = self.ax, self.trace
        ax.clear()
        self.side.clear()
        ax.axis("off")
        self.side.axis("off")
        read = min(frame + 1, self.S)  # source tokens read so far
        step = frame - self.S  # decoding step, negative while encoding
        weights = self.weights[step] if step >= 0 and self.weights is not None else None
        for j in range(self.S):
            w = float(weights[j]) if weights is not None else 0.0
            face = self.cmap(0.15 + 0.85 * w) if weights is not None else (
                "#ffe9a8" if j == frame else "white")
            self.box(self.x_src(j), SRC_Y, trace.src_tokens[j], face=face, edge="#555" if j < read else "#ccc")
        self.draw_states(read)
        for t in range(max(step + 1, 0)):
            self.box(self.x_tgt(t), TGT_Y, trace.tgt_tokens[t], face="#ffe9a8" if t == step else "white", bold=t == step)
        if step >= 0:
            self.draw_links(step, weights)
            self.draw_side(step)
            title = f"decoding step {step + 1}/{self.T}: emits {trace.tgt_tokens[step]!r}"
        else:
            title = f"encoding: reads {trace.src_tokens[frame]!r} ({frame + 1}/{self.S})"
            self.side.text(0, 0.95, "encoder", fontsize=9, fontweight="bold", va="top")
            self.side.text(0, 0.82, "the strip under each token is a\nglimpse of its encoder state,\n"
                                    + ("which the decoder attends to" if self.weights is not None else
                                       "but without attention the decoder\nsees only the last one"),
                           fontsize=8, va="top")
        self.title.set_text(f"{trace.label}: {title}")
        ax.set_xlim(-0.6, self.width - 0.4)
        ax.set_ylim(-0.3, 4.7)

    def draw_states(self, read: int):
        """The strips of the first `read` encoder states, as one image: three sub-columns per token, middle one set."""
        grid = np.full((STATE_CELLS, 3 * self.S), np.nan)
        grid[:, 1: 3 * read: 3] = self.strips[:read].T
        self.ax.imshow(grid, cmap="PuOr", vmin=0, vmax=1, aspect="auto", interpolation="nearest",
                       extent=(self.x_src(0) - 0.5, self.x_src(self.S - 1) + 0.5, STATE_Y - 0.4, STATE_Y + 0.67))

    def draw_links(self, step: int, weights):
        """Lines from the emitted token to the states it attends to, or to the last state without attention."""
        x0 = self.x_tgt(step)
        if weights is None:
            self.ax.annotate("", (self.x_src(self.S - 1), STATE_Y - 0.55), (x0, TGT_Y + 0.4),
                             arrowprops={"arrowstyle": "->", "color": "#c0392b", "lw": 1.5})
            return
        for j, w in enumerate(weights):
            share = float(w)
            if share > 0.01:
                self.ax.plot([x0, self.x_src(j)], [TGT_Y + 0.37, STATE_Y - 0.55], color="#c0392b",
                             alpha=min(1.0, 0.15 + 0.85 * share), lw=0.4 + 3.2 * share)

    def draw_side(self, step: int):
        """This step's top alternatives with probabilities, and the beams when searching with a beam."""
        side, y = self.side, 0.97
        side.text(0, y, f"step {step + 1}: most probable next tokens", fontsize=8, fontweight="bold", va="top")
        for token, p in self.trace.alternatives[step]:
            y -= 0.075
            side.add_artist(Rectangle((0.0, y - 0.055), 0.35 * p, 0.05, color="#5b8ff9"))
            side.text(0.38, y - 0.03, f"{token}  {p:.2f}", fontsize=7, va="center")
        if step < len(self.beams):
            y -= 0.11
            side.text(0, y, f"beams after step {step + 1} (log-prob)", fontsize=8, fontweight="bold", va="top")
            for prefix, score in self.beams[step][:6]:
                y -= 0.075
                side.text(0, y, f"{score:7.2f}  {prefix[-38:]}", fontsize=7, va="top", family="monospace")
        side.set_xlim(0, 1)
        side.set_ylim(0, 1)


def render_frames(scene: DecodingAnimation, dpi: int = 90) -> Iterator[np.ndarray]:
    """Every frame drawn once, as (height, width, 3) RGB arrays, one at a time."""
    scene.fig.set_dpi(dpi)
    for i in range(scene.frames):
        scene.draw(i)
        scene.fig.canvas.draw()
        yield np.asarray(scene.fig.canvas.buffer_rgba())[..., :3].copy()


def write_gif(frames: list[Image.Image], path: Path, fps: float) -> Path:
    first, *rest = frames
    first.save(path, save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)
    return Path(path)


class VideoStream:
    """An H.264 MP4 written by ffmpeg as frames arrive, raw RGB piped in (sizes padded to even numbers, as
    yuv420p needs), so the frames never need to be held all at once."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.ffmpeg = Path(path), fps, None

    def write(self, frame: np.ndarray) -> None:
        if self.ffmpeg is None:  # started by the first frame, which gives the size
            height, width = frame.shape[:2]
            command = [shutil.which("ffmpeg") or "ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo",
                       "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{self.fps}", "-i", "-",
                       "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p", "-c:v", "libx264",
                       str(self.path)]
            self.ffmpeg = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE)
        try:
            self.ffmpeg.stdin.write(frame.tobytes())
        except BrokenPipeError:  # ffmpeg stopped early; finish() reports its message
            pass

    def finish(self) -> Path:
        """Wait for ffmpeg; the MP4's path, or a one-line error with ffmpeg's last words."""
        try:
            self.ffmpeg.stdin.close()
        except BrokenPipeError:
            pass
        message = self.ffmpeg.stderr.read().decode(errors="replace").strip().splitlines()
        if self.ffmpeg.wait() != 0:
            self.path.unlink(missing_ok=True)
            raise AttendError(f"{self.path}: ffmpeg could not write the video ({(message or ['no message'])[-1]})")
        return self.path

    def abandon(self) -> None:
        """Stop ffmpeg and remove its partial file (when drawing failed half-way)."""
        if self.ffmpeg is not None:
            self.ffmpeg.kill()
            self.ffmpeg.wait()
            self.path.unlink(missing_ok=True)


@plain_text
def animate(trace: Trace, path: Path, fps: float = 1.5, mp4: bool = True,
            warn: Callable[[str], None] | None = None) -> list[Path]:
    """Write `path` (GIF) and, where ffmpeg is installed and `mp4`, the same frames as an MP4 beside it.

    Each frame goes to ffmpeg as it is drawn and is kept for the GIF as a 256-colour image, as the GIF
    stores it, a third of its RGB size. An ffmpeg that fails costs the MP4 only: `warn` (when given) is
    told why, and the GIF stays.
    """
    scene = DecodingAnimation(trace)
    video = VideoStream(Path(path).with_suffix(".mp4"), fps) if mp4 and shutil.which("ffmpeg") else None
    frames = []
    try:
        for rgb in render_frames(scene):
            frames.append(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE))
            if video is not None:
                video.write(rgb)
    except BaseException:
        if video is not None:
            video.abandon()
        raise
    finally:
        plt.close(scene.fig)
    written = [write_gif(frames, path, fps)]
    if video is not None:
        try:
            written.append(video.finish())
        except AttendError as e:
            if warn is None:
                raise
            warn(f"warning: {e}; the GIF is written")
    return written
