"""Going on with a run: from its folder's latest checkpoint, with budgets and patience changed on the way.

A resumed run is the run it continues, step for step (weights, optimizer, schedule, data position, random
state: `Trainer.restore`). What a user changes on resuming is checked first against what the run has
spent, and written to config.yaml only once the checkpoint has loaded, so a refused or failed resume leaves
the folder as it was.
"""

from __future__ import annotations

from pathlib import Path

from attend import checkpoint
from attend.config import config_to_yaml
from attend.errors import AttendError
from attend.train import Trainer, check_batch_budget, prepare, use_threads


def resume(folder: str | Path, progress: bool = True, max_steps: int | None = None,
           max_minutes: float | None = None, patience: int | None = None) -> dict:
    """Continue training a model folder from its latest checkpoint, or from the start when its run was killed
    before the first one. Budgets and patience may be changed; the new values are kept in config.yaml, so that
    a later plain resume trains to them. Interrupted, it raises as `train` does."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AttendError(f"{folder}: no such model folder to resume")
    with checkpoint.run_lock(folder):
        return _resume(folder, progress, max_steps, max_minutes, patience)


def _resume(folder: Path, progress: bool, max_steps: int | None, max_minutes: float | None,
            patience: int | None) -> dict:
    config = checkpoint.load_folder_config(folder)
    ckpt = checkpoint.latest_checkpoint(folder)
    if ckpt is None:
        _refuse_a_folder_that_is_not_a_stopped_run(folder)
    state = checkpoint.load_trainer_state(ckpt) if ckpt else None
    changes = {key: value for key, value in
               (("max_steps", max_steps), ("max_minutes", max_minutes), ("patience", patience)) if value is not None}
    _refuse_spent_changes(state, changes)
    for key, value in changes.items():
        setattr(config.train, key, value)
    config.train.validate(f"{folder}: the changed settings")  # never write a config.yaml that cannot load
    check_batch_budget(config, str(folder / checkpoint.CONFIG))
    use_threads(config.train.threads)
    data = prepare(config, checkpoint.load_tokenizers(folder), checkpoint.load_vocabs(folder))
    trainer = Trainer(config, folder, data, progress)
    if ckpt is None:
        trainer.say(f"{folder} has no checkpoint yet (its run stopped before the first): training from step 0",
                    always=True)
        trainer.forget_metrics_after(0)
    else:
        trainer.restore(ckpt, state)
    if changes:
        checkpoint.atomic_write(folder / checkpoint.CONFIG, config_to_yaml(config))
    _say_if_the_rate_moves(trainer)
    return trainer.run()


BEFORE_FIRST_CHECKPOINT = {checkpoint.CONFIG, checkpoint.VOCAB, checkpoint.TOKENIZERS, "src.spm", "tgt.spm",
                           "train.log", "metrics.jsonl", "checkpoints", "pictures", "curves.png", "tensorboard"}


def _refuse_a_folder_that_is_not_a_stopped_run(folder: Path) -> None:
    """A folder without checkpoints starts over on --resume only when it holds no more than a run writes
    before its first checkpoint; weights of any kind (an averaged model, a CTranslate2 export) are kept."""
    other = sorted(p.name for p in folder.iterdir() if p.name not in BEFORE_FIRST_CHECKPOINT)
    if other:
        raise AttendError(f"{folder}: has no checkpoints/step-* to resume from, and holds {', '.join(other[:3])}: "
                          "not a run stopped before its first checkpoint; train a new run with 'attend train CONFIG'")


def _refuse_spent_changes(state: dict | None, changes: dict) -> None:
    """A budget or patience given on resuming that the run has already used up would train nothing and
    overwrite the run's own setting; refuse it, saying where the run stands (`state`: its trainer state)."""
    if state is None:
        return
    step, bad_evals, minutes = state.get("step", 0), state.get("bad_evals", 0), state.get("train_seconds", 0.0) / 60
    if changes.get("max_steps") is not None and changes["max_steps"] <= step:
        raise AttendError(f"--max-steps {changes['max_steps']} is not above step {step:,}, where this run "
                          "stands; give a larger one")
    if changes.get("max_minutes") and changes["max_minutes"] <= minutes:
        raise AttendError(f"--max-minutes {changes['max_minutes']:g} is not above the {minutes:.3g} minutes this "
                          "run has trained; give a larger one")
    if changes.get("patience") is not None and changes["patience"] <= bad_evals:
        raise AttendError(f"--patience {changes['patience']} is not above the {bad_evals} evaluation"
                          f"{'s' * (bad_evals != 1)} without improvement this run has had; give a larger one")


def _say_if_the_rate_moves(trainer: Trainer) -> None:
    """A raised budget re-stretches the schedule over it (a warm restart of a cosine): say so, with both rates."""
    t, scheduler = trainer.config.train, trainer.scheduler
    before, peak = scheduler.get_last_lr()[0], scheduler.base_lrs[0]
    after = peak * scheduler.lr_lambdas[0](trainer.step)  # the schedule's own rule, under the budgets now set
    if abs(after - before) > 0.05 * peak:  # a twentieth of the peak: not the clock's drift near a cosine's end
        budget = f"{t.max_minutes:g} minutes" if t.max_minutes > 0 else f"step {t.max_steps:,}"
        trainer.say(f"resuming at step {trainer.step:,}: the {t.schedule} schedule now runs to {budget}, "
                    f"so the learning rate goes from {before:.3g} to {after:.3g}", always=True)
