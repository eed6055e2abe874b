"""Reading parallel text: plain or gzip files, or TSV, strictly UTF-8.

Problems are reported with the file and the 1-based line number, because the
user's next step is to open that file at that line.
"""

from __future__ import annotations

import gzip
import os
import select
import zlib
from collections import deque
from pathlib import Path
from typing import Iterator

from attend.errors import AttendError

BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, which some editors put at the start of a file
GZIP_MAGIC = b"\x1f\x8b"


def read_lines(path: str | Path) -> list[str]:
    """All lines of a text file (.gz is decompressed), without line endings."""
    return list(iter_lines(path))


def decode_line(line: bytes, name: str, number: int) -> str:
    """One line as text. A byte-order mark is not part of it: at the start of a file, nor at the start of any
    later line, where files joined with `cat` leave their marks."""
    if line.startswith(BOM):
        line = line[len(BOM):]
    try:
        return line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise AttendError(f"{name}:{number}: invalid UTF-8 at byte {e.start} of the line; re-encode the file as UTF-8") from None


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of a text file (.gz is decompressed) one at a time, for inputs too big to hold at once."""
    path = Path(path)
    if path.is_dir():
        raise AttendError(f"{path}: is a folder; give a text file")
    if not path.is_file():
        raise AttendError(f"{path}: file not found")
    return _lines_of(path)


def _is_gzip(path: Path) -> bool:
    """Whether the file is gzip data: named so (.gz, .GZ), or starting as gzip does whatever its name."""
    if path.suffix.lower() == ".gz":
        return True
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _open_bytes(path: Path):
    """The file's bytes, decompressed when it is gzip data."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


_UNREADABLE = (OSError, EOFError, zlib.error)  # zlib.error: a damaged .gz whose header is still right


def _lines_of(path: Path) -> Iterator[str]:
    number, what = 0, "the file"
    try:
        what = "gzip data" if _is_gzip(path) else what
        with _open_bytes(path) as f:
            for number, line in enumerate(f, 1):
                yield decode_line(line.rstrip(b"\n"), str(path), number)
    except _UNREADABLE as e:
        raise AttendError(f"{path}:{number + 1}: cannot read {what} ({e})") from None


class StreamLines:
    """The lines of a stream (standard input) as they arrive, and whether another is there to read now.

    `waiting()` lets a batching reader decode what it holds instead of blocking for more: someone typing
    or a slow pipe gets each answer when its line is in, a file or a fast pipe still fills whole batches.
    """

    def __init__(self, fd: int, name: str = "stdin"):
        self.fd, self.name = fd, name
        self.complete: deque[bytes] = deque()  # whole lines read, not yet handed out
        self.partial, self.ended = b"", False

    def __iter__(self) -> Iterator[str]:
        number = 0
        while self.complete or self._read():
            number += 1
            yield decode_line(self.complete.popleft(), self.name, number)

    def _read(self) -> bool:
        """Read until a whole line (or the end) is in; whether there is a line to hand out."""
        while not self.complete and not self.ended:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.ended = True
                if self.partial:  # a last line without its newline
                    self.complete.append(self.partial)
                break
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()
            self.complete.extend(lines)
        return bool(self.complete)

    def waiting(self) -> bool:
        """Whether a line (or the end) can be read without blocking."""
        if self.complete or self.ended:
            return True
        try:
            return bool(select.select([self.fd], [], [], 0)[0])
        except (OSError, ValueError):  # a stream select cannot watch (Windows): a terminal is answered line by
            return not os.isatty(self.fd)  # line, a pipe or file in whole batches


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
