"""What the benchmark scripts share: the device a row ran on, named variants of a family, and the
checkpoint a row reports.

`--set SECTION.KEY=VALUE` changes a config value for a run and `--name` gives
that variant its own folder and row; a folder is reused only for the same
settings, so a table never mixes a result with the settings of another.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def device_name() -> str:
    """The GPU's name, or the CPU's thread count and instruction set: the table's device column."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
    return f"CPU {threads} thread{'s' * (threads > 1)} ({torch.backends.cpu.get_cpu_capability()})"


def add_variant_args(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change a config value of every family run, e.g. model.dropout=0.3")
    parser.add_argument("--name", help="with one family: its folder and row name (default: the family)")


def check_variant_args(parser, args) -> None:
    if args.name and len(args.families) != 1:
        parser.error("--name needs exactly one --families entry")


def reused_result(result_file: Path, settings: list[str]) -> dict | None:
    """A finished row kept in `result_file`, if any; it must have been run with these --set settings."""
    if not result_file.exists():
        return None
    row = json.loads(result_file.read_text())
    if row.get("settings", []) != settings:
        sys.exit(f"{result_file.parent}: holds a result with --set {row.get('settings', [])}, not {settings}; "
                 "delete it or choose another --name")
    return row


def best_or_averaged(folder: Path, averaged_out: Path, valid_score, lower_is_better: bool = False):
    """A run's best checkpoint or the average of its last five, whichever `valid_score` prefers (it scores on
    validation, never on test): (its name, the loaded model, both scores)."""
    from attend.average import average_checkpoints
    from attend.checkpoint import load_model

    steps = sorted(int(c.name.split("-")[1]) for c in (folder / "checkpoints").glob("step-*"))[-5:]
    if averaged_out.exists():  # an earlier sitting averaged the same run, then stopped before its row was written
        if load_model(averaged_out).meta.get("averaged_steps") != steps:
            sys.exit(f"{averaged_out}: averages other checkpoints than {folder}'s last five; delete it")
    else:
        average_checkpoints(folder, averaged_out, last=5)
    candidates = {"best": load_model(folder), "averaged": load_model(averaged_out)}
    scores = {name: valid_score(loaded) for name, loaded in candidates.items()}
    name = (min if lower_is_better else max)(scores, key=scores.get)
    return name, candidates[name], scores
