"""One self-contained, interactive HTML page of one or more traces.

Everything is inline (CSS, JavaScript, and the traces as JSON), so the file can
be mailed, opened offline or archived next to a model and still work: it loads
nothing from the network. The page's look and behaviour live in
`attend/explain/assets/page.{html,css,js}`; this module only fills them in.
"""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files
from pathlib import Path

from attend.errors import AttendError
from attend.explain.trace import Trace

ASSETS = files("attend.explain") / "assets"
_SLOT = re.compile(r"\{\{(\w+)\}\}")
# Characters that could end a <script> element or start an HTML comment, or that old
# JavaScript engines treat as line breaks; JSON allows each as a \u escape instead.
_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def script_json(data) -> str:
    """JSON that is safe inside <script type="application/json">: a token "</script>" cannot end the tag."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise AttendError("the trace holds NaN or infinite numbers; the model's attention or scores are broken") from None
    return re.sub("[<>&\u2028\u2029]", lambda m: _UNSAFE[m.group()], text)


def render_page(traces: list[Trace]) -> str:
    """The page's HTML text: one panel per trace, side by side."""
    if not traces:
        raise AttendError("explain needs at least one trace to draw a page")
    title = " vs ".join(f"{t.label}" for t in traces) + " - attend explain"
    slots = {
        "title": html.escape(title),
        "css": _asset("page.css"),
        "js": _asset("page.js"),
        "data": script_json([t.to_dict() for t in traces]),
    }
    # One pass, so text filled into a slot is never itself searched for slots.
    return _SLOT.sub(lambda m: slots[m.group(1)], _asset("page.html"))


def write_page(traces: list[Trace], path: str | Path) -> Path:
    """Write the page for `traces` to `path` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(traces), encoding="utf-8")
    return path


__all__ = ["render_page", "script_json", "write_page"]
