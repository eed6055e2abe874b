"""Checkpoint averaging: the mean of the last N checkpoints' weights, as a new model folder.

Averaging the parameters of the last few checkpoints of a run smooths out the
noise of the final updates and usually gains a little BLEU for free (Vaswani
et al., 2017, averaged the last 5 or 20). The source folder is only read.
"""

from __future__ import annotations

import shutil
from pathlib import Path


from attend import checkpoint
from attend.errors import AttendError


def average_checkpoints(folder: str | Path, out: str | Path, last: int = 5) -> tuple[Path, list[Path]]:
    """Write the average of `folder`'s last `last` checkpoints into the new model folder `out`."""
    folder, out = Path(folder), Path(out)
    if last < 1:
        raise AttendError(f"--last must be at least 1, got {last}")
    checkpoint.require_new_folder(out, "choose another --out")
    found = sorted((folder / "checkpoints").glob("step-*"))
    if not found:
        raise AttendError(f"{folder}: no checkpoints/step-* to average; was it trained with attend train?")
    chosen = found[-last:]
    total, model = None, None
    for ckpt in chosen:
        model = checkpoint.load_model(folder, weights_from=ckpt).model
        weights = {k: v.double() for k, v in model.state_dict().items() if v.is_floating_point()}
        total = weights if total is None else {k: total[k] + weights[k] for k in total}
    model.load_state_dict({k: v / len(chosen) for k, v in total.items()}, strict=False)
    steps = [int(c.name.split("-")[1]) for c in chosen]
    meta = checkpoint.read_json(chosen[-1] / checkpoint.META)
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "valid")}
    with checkpoint.staged_folder(out) as staging:  # a failure leaves no half-written folder at --out
        for name in (checkpoint.CONFIG, checkpoint.VOCAB, checkpoint.TOKENIZERS, "src.spm", "tgt.spm"):
            if (folder / name).exists():
                shutil.copyfile(folder / name, staging / name)
        checkpoint.save_weights(staging, model, {**meta, "averaged_steps": steps, "averaged_from": str(folder)})
    return out, chosen


__all__ = ["average_checkpoints"]
