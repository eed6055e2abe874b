"""Reading parallel text: plain or gzip files, or TSV, strictly UTF-8.

Problems are reported with the file and the 1-based line number, because the
user's next step is to open that file at that line.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

from attend.errors import AttendError


def read_lines(path: str | Path) -> list[str]:
    """All lines of a text file (.gz is decompressed), without line endings."""
    return list(iter_lines(path))


def decode_line(line: bytes, name: str, number: int) -> str:
    try:
        return line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise AttendError(f"{name}:{number}: invalid UTF-8 at byte {e.start} of the line; re-encode the file as UTF-8") from None


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of a text file (.gz is decompressed) one at a time, for inputs too big to hold at once."""
    path = Path(path)
    if not path.is_file():
        raise AttendError(f"{path}: file not found")
    return _lines_of(path)


def _open_bytes(path: Path):
    """The file's bytes, decompressed when it ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


_UNREADABLE = (OSError, EOFError, zlib.error)  # zlib.error: a damaged .gz whose header is still right


def _lines_of(path: Path) -> Iterator[str]:
    number = 0
    try:
        with _open_bytes(path) as f:
            for number, line in enumerate(f, 1):
                yield decode_line(line.rstrip(b"\n"), str(path), number)
    except _UNREADABLE as e:
        what = "gzip data" if path.suffix == ".gz" else "the file"
        raise AttendError(f"{path}:{number + 1}: cannot read {what} ({e})") from None


def count_lines(path: str | Path) -> int:
    """Lines in a file (for progress bars), read in blocks."""
    path = Path(path)
    try:
        with _open_bytes(path) as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except _UNREADABLE as e:
        raise AttendError(f"{path}: cannot read the file ({e})") from None


def read_parallel(src: str | Path, tgt: str | Path | None = None) -> list[tuple[str, str]]:
    """Source/target pairs from two aligned files, or from one TSV file.

    Raises on mismatched line counts and on an empty corpus: both mean the
    files are not what the user thinks they are.
    """
    if tgt is None:
        pairs = _read_tsv(Path(src))
        name = str(src)
    else:
        src_lines, tgt_lines = read_lines(src), read_lines(tgt)
        if len(src_lines) != len(tgt_lines):
            raise AttendError(
                f"{src} has {len(src_lines)} lines but {tgt} has {len(tgt_lines)}; "
                "source and target files must be line-aligned"
            )
        pairs = list(zip(src_lines, tgt_lines))
        name = f"{src} / {tgt}"
    if not any(s.strip() and t.strip() for s, t in pairs):
        raise AttendError(f"{name}: the corpus is empty (no line with both a source and a target)")
    return pairs


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise AttendError(f"{path}:{number}: expected 2 tab-separated columns (source, target), found {len(columns)}")
        pairs.append((columns[0], columns[1]))
    return pairs
