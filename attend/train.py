"""The training loop: batches in, a model folder out.

Read top to bottom: `prepare` turns the configured task into token-id
examples; `Trainer.run` loops over length-bucketed batches with Adam(W), a
warmup schedule, label smoothing and gradient clipping; every `eval_every`
steps it decodes the validation set with the real metric, keeps the best
weights as model.safetensors, keeps the last N resumable checkpoints, and
stops early when the metric stops improving, or when the step or time budget
runs out.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from attend import checkpoint
from attend.checkpoint import LoadedModel
from attend.config import Config, length_limit
from attend.data.batching import Skipped, bucket_batches, collate, encode_pairs
from attend.data.tokenizers import Tokenizer, build_tokenizer
from attend.data.vocab import PAD_ID, Vocab
from attend.device import autocast, pick_device, resolve_precision
from attend.errors import AttendError
from attend.evaluate import HIGHER_IS_BETTER, score
from attend.inference import Translator
from attend.models import build_model, count_parameters
from attend.recipes import Task, load_task


@dataclass
class Prepared:
    """A task turned into what the model eats."""

    task: Task
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocab
    tgt_vocab: Vocab
    examples: list  # (source ids, target ids)
    skipped: Skipped


def prepare(config: Config, tokenizers=None, vocabs=None) -> Prepared:
    """Load the task, train (or reuse) tokenizers and vocabularies, encode the training pairs."""
    d = config.data
    task = load_task(d)
    if tokenizers is None and d.joint_subwords:
        joint = build_tokenizer("subword", [s for s, _ in task.train] + [t for _, t in task.train],
                                False, d.subword_vocab_size)
        tokenizers = (joint, joint)
    if tokenizers is None:
        tokenizers = (
            build_tokenizer(d.src_tokenizer, [s for s, _ in task.train], d.src_lowercase, d.subword_vocab_size),
            build_tokenizer(d.tgt_tokenizer, [t for _, t in task.train], False, d.subword_vocab_size),
        )
    src_tok, tgt_tok = tokenizers
    if vocabs is None and d.joint_subwords:
        joint_vocab = Vocab.build([src_tok.encode(s) for s, _ in task.train] + [tgt_tok.encode(t) for _, t in task.train],
                                  d.min_freq)
        vocabs = (joint_vocab, joint_vocab)
    if vocabs is None:
        vocabs = (
            Vocab.build((src_tok.encode(s) for s, _ in task.train), d.min_freq),
            Vocab.build((tgt_tok.encode(t) for _, t in task.train), d.min_freq),
        )
    examples, _, skipped = encode_pairs(task.train, src_tok, tgt_tok, *vocabs, max_len=length_limit(config))
    if not examples:
        raise AttendError(f"no training pair is shorter than data.max_len={d.max_len} tokens; raise data.max_len")
    return Prepared(task, src_tok, tgt_tok, vocabs[0], vocabs[1], examples, skipped)


def make_optimizer(model: torch.nn.Module, t) -> torch.optim.Optimizer:
    """Adam or AdamW; the fused kernel (one pass over all parameters) where this PyTorch has it."""
    adam = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    options = dict(lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    try:
        return adam(model.parameters(), fused=True, **options)
    except (RuntimeError, TypeError):  # older PyTorch, or a device without the fused kernel
        return adam(model.parameters(), **options)


def _record_step(line: str) -> float:
    """The step of one metrics.jsonl line; a line cut short by a crash counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def learning_rate_factor(step: int, cfg, time_fraction: float = 0.0) -> float:
    """Multiplier on train.lr: linear warmup, then inverse square root, cosine decay or constant.

    The cosine reaches zero at max_steps, or when the time budget (max_minutes)
    runs out if that comes first: `time_fraction` is the share of the time left
    after warm-up that has passed, so decay starts from the peak rate however
    long warm-up took.
    """
    warmup = max(cfg.warmup_steps, 1)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(warmup / (step + 1))
    if cfg.schedule == "cosine":
        progress = min(1.0, max((step - warmup) / max(1, cfg.max_steps - warmup), time_fraction))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


@dataclass
class LogWindow:
    """The training steps since the last log line, which its loss and tokens/s average over (after a resume
    the first window may hold fewer than log_every steps)."""

    loss: torch.Tensor | float = 0.0  # summed on the device: read back only when logged, no sync per step
    steps: int = 0
    tokens: int = 0  # source and target
    start: float = field(default_factory=time.time)

    def add(self, loss: torch.Tensor, tokens: int) -> None:
        self.loss, self.steps, self.tokens = self.loss + loss, self.steps + 1, self.tokens + tokens

    def mean_loss(self) -> float:
        return float(self.loss) / max(self.steps, 1)

    def tokens_per_s(self) -> float:
        return self.tokens / max(time.time() - self.start, 1e-9)


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM (`timeout`, Slurm, `docker stop`) during training: the loop stops after the
    step it is in and saves a resumable checkpoint, so no more than that step is lost. A second signal stops
    at once. Outside the main thread, where Python cannot take signals, the default handling stays."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: str | None = None  # the name of the signal that asked
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        print(f"\nattend: {self.signal}: stopping after the step in progress, keeping what was trained (again to "
              "stop at once)", file=sys.stderr, flush=True)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training after a step, and a checkpoint was saved; `summary` says where. A
    KeyboardInterrupt, so that a caller that does not look for it stops too, as it would have before."""

    def __init__(self, summary: dict):
        super().__init__(summary["stop_reason"])
        self.summary = summary


class Trainer:
    """Owns the model, optimizer and bookkeeping of one run into one model folder."""

    def __init__(self, config: Config, folder: Path, data: Prepared, progress: bool = True):
        self.config, self.folder, self.data, self.progress = config, folder, data, progress
        t = config.train
        torch.manual_seed(t.seed)
        random.seed(t.seed)
        self.device = pick_device()
        self.precision = resolve_precision(t.precision, self.device)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise AttendError("train.precision fp16 needs a GPU; use bf16 (on CPUs with bf16 instructions) or fp32")
        self.scaler = torch.amp.GradScaler(enabled=self.precision == "fp16")
        self.model = build_model(config.model, len(data.src_vocab), len(data.tgt_vocab)).to(self.device)
        self.optimizer = make_optimizer(self.model, t)
        self.started = time.time()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.target_tokens = 0  # real target tokens trained on so far: the x axis on which runs compare
        self.seconds_before = 0.0  # training time of the runs this one resumes
        self.decay_start_s = None  # training seconds when warm-up ended: where a time budget's cosine begins
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: learning_rate_factor(s, t, self._time_fraction()))
        self.best, self.bad_evals = None, 0
        self.validated_on_disk = True  # False when the checkpoint restored was saved without validation
        limit = length_limit(config)
        self.valid_skipped = Skipped()
        fits = []
        for s, refs in data.task.valid:
            if not s.strip() or not any(r.strip() for r in refs):
                self.valid_skipped.empty += 1
            elif len(data.src_tokenizer.encode(s)) >= limit:
                self.valid_skipped.too_long += 1
            else:
                fits.append((s, refs))
        if data.task.valid and not fits:
            raise AttendError(f"none of the {len(data.task.valid):,} validation pairs can be scored "
                              f"({self.valid_skipped}; the longest input a model takes is {limit - 1} tokens); "
                              "check the validation files, or raise data.max_len (and model.max_positions)")
        self.valid = fits[: t.valid_max_sentences]
        self.pictures = None
        if t.pictures or t.tensorboard:
            from attend.explain.training import TrainingPictures

            shown = next((s for s, _ in self.valid if s.strip()), None)  # the sentence whose attention is drawn
            self.pictures = TrainingPictures(folder, config.data.metric, shown, t.tensorboard, draw=t.pictures)
        self.valid_examples, _, _ = encode_pairs([(s, refs[0]) for s, refs in self.valid], data.src_tokenizer,
                                                 data.tgt_tokenizer, data.src_vocab, data.tgt_vocab, limit)

    # ----- the loop -----------------------------------------------------------------------------
    def run(self) -> dict:
        t = self.config.train
        start = self.started = time.time()
        # the budget counts the training time of every sitting, as max_steps counts every step
        deadline = start + 60 * t.max_minutes - self.seconds_before if t.max_minutes > 0 else float("inf")
        self.say(f"training {self.config.model.family} on {self.device.type} in {self.precision}: "
                 f"{count_parameters(self.model):,} parameters, "
                 f"{len(self.data.examples):,} pairs ({self.data.skipped}), "
                 f"{len(self.valid):,} validation inputs ({self.valid_skipped}), "
                 f"from step {self.step}")
        bar, first_step = self._progress_bar(), self.step
        with StopRequest() as stop:  # the last checkpoint is saved under it too: a first Ctrl-C there waits for it
            stop_reason, last_eval_step = self._loop(stop, bar, start, deadline)
            if bar is not None:
                bar.close()
            interrupted = stop_reason.startswith("interrupted")  # the loop was cut short, not ended
            if interrupted:
                if last_eval_step != self.step and self.step != first_step:  # else the one on disk is this one
                    self._save_unvalidated()
            elif self.step == first_step > 0 and self.validated_on_disk:  # a resumed run with nothing left
                stop_reason = f"nothing left to train: {stop_reason}; {_advice(stop_reason)}"
            elif last_eval_step != self.step:  # also a new run that trained no step: it leaves a resumable folder
                self._evaluate_and_save()
        best = "none yet" if self.best is None else f"{self.best:.4g}"
        self._log(f"stopped at step {self.step}: {stop_reason}; best validation {self.config.data.metric} {best}")
        if self.pictures is not None:
            self.pictures.close()
        summary = {"step": self.step, "epoch": self.epoch, "stop_reason": stop_reason, "best": self.best,
                   "metric": self.config.data.metric, "minutes": (time.time() - start) / 60,
                   "train_seconds": self.train_seconds()}
        if interrupted:
            raise TrainingInterrupted(summary)
        return summary

    def _loop(self, stop: StopRequest, bar, start: float, deadline: float) -> tuple[str, int | None]:
        """Train until a budget, patience or a stop request ends it: (why it stopped, the last validated step)."""
        t = self.config.train
        first_step, last_eval_step, batches = self.step, None, self._epoch_batches()
        window, stop_reason = LogWindow(), "max_steps"
        while self.step < t.max_steps:
            if stop.signal is not None:
                stop_reason = f"interrupted by {stop.signal}"
                break
            if time.time() > deadline:  # checked first, so a resumed run whose budget is spent trains no step
                stop_reason = f"time budget of {t.max_minutes:g} minute{'s' * (t.max_minutes != 1)}"
                break
            if self.bad_evals >= t.patience:  # a resumed run that had stopped early
                stop_reason = f"no improvement in {t.patience} evaluations"
                break
            if self.batch_in_epoch >= len(batches):
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                batches = self._epoch_batches()
            if self.epoch >= t.max_epochs:
                stop_reason = "max_epochs"
                break
            batch = collate(self.data.examples, batches[self.batch_in_epoch]).to(self.device)
            self.batch_in_epoch += 1
            window.add(self._train_step(batch), batch.n_src_tokens + batch.n_tgt_tokens)
            self.target_tokens += batch.n_tgt_tokens
            if self.step % t.log_every == 0:
                self._log_window(window, bar, start, deadline)
                window = LogWindow()
            if bar is not None:
                bar.update(1)
                if self.step - first_step < t.log_every:  # until the first log line, so the ETA is soon honest
                    self._adjust_total(bar, start, deadline)
            if self.step % t.eval_every == 0:
                if window.steps:  # the steps since the last log line, which checked the ones before
                    self._stop_if_diverged(window.mean_loss())
                last_eval_step, evaluation_began = self.step, time.time()
                if self._evaluate_and_save():
                    stop_reason = f"no improvement in {t.patience} evaluations"
                    break
                window.start += time.time() - evaluation_began  # tokens/s counts training time only
        if window.steps:  # the steps since the last log line: a run shorter than log_every still has its rate
            self._log_window(window, bar, start, deadline)
        return stop_reason, last_eval_step

    def train_seconds(self) -> float:
        """Wall time spent training this model so far, over every run that resumed it."""
        return self.seconds_before + time.time() - self.started

    def _time_fraction(self) -> float:
        """Share of the training time from the end of warm-up to the end of the budget that has passed (0
        without a budget). Counted in training seconds, which checkpoints keep, so a resumed run goes on with
        the same schedule."""
        t = self.config.train
        if t.max_minutes <= 0 or self.step < t.warmup_steps:
            return 0.0
        now_s = self.train_seconds()
        if self.decay_start_s is None:
            self.decay_start_s = now_s
        budget_s = 60 * t.max_minutes
        return min(1.0, (now_s - self.decay_start_s) / max(budget_s - self.decay_start_s, 1e-9))

    def _epoch_batches(self) -> list[list[int]]:
        """This epoch's batches: a fixed shuffle per (seed, epoch), so a resumed run sees the same order."""
        t = self.config.train
        return bucket_batches(self.data.examples, t.batch_tokens, random.Random(t.seed * 1000 + self.epoch))

    def _train_step(self, batch) -> torch.Tensor:
        self.model.train()
        n_tokens = batch.n_tgt_tokens
        with autocast(self.precision, self.device):
            logits = self.model(batch.src, batch.src_mask, batch.tgt_in)  # (batch, tgt_len, vocab)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1),
                               ignore_index=PAD_ID, label_smoothing=self.config.train.label_smoothing,
                               reduction="sum") / n_tokens
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.train.clip_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return loss.detach()

    # ----- validation and checkpoints ---------------------------------------------------------
    def loaded(self) -> LoadedModel:
        d = self.data
        return LoadedModel(self.config, self.model, d.src_tokenizer, d.tgt_tokenizer, d.src_vocab, d.tgt_vocab, {})

    def validate(self) -> dict:
        """Decode the validation inputs greedily and score them with the task's metrics."""
        self.model.eval()
        sources = [s for s, _ in self.valid]
        hyps = Translator(self.loaded(), batch_size=256).best(sources, source="validation")
        return score(self.config.data.metric, hyps, [refs for _, refs in self.valid])

    def _evaluate_and_save(self) -> bool:
        """Validate, keep the best weights and a resumable checkpoint; True when patience runs out."""
        metric = self.config.data.metric
        result = self.validate() if metric != "loss" else {}
        result["loss"] = self._validation_loss()
        self._stop_if_diverged(result["loss"], validation=True)
        value = result[metric]
        improved = math.isfinite(value) and (self.best is None or
                                             (value > self.best if HIGHER_IS_BETTER[metric] else value < self.best))
        if improved:
            self.best, self.bad_evals = value, 0
            checkpoint.save_weights(self.folder, self.model, self._meta(result))
        else:
            self.bad_evals += 1
        checkpoint.save_training_state(self.folder, self.model, self._meta(result), self._trainer_state(),
                                       self.config.train.keep_last)
        self._log_metrics({"step": self.step, "target_tokens": self.target_tokens,
                           "valid": {k: v for k, v in result.items() if not k.endswith("signature")},
                           "best": self.best})
        if self.pictures is not None:
            self.pictures.after_validation(self.step, result, self.loaded())
        shown = ", ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))
        self.say(f"step {self.step}: validation {shown}{' (best so far)' if improved else ''}")
        return self.bad_evals >= self.config.train.patience

    def _save_unvalidated(self) -> None:
        """A resumable checkpoint of the weights as they are, for a run stopped between validations; the best
        weights and the early-stopping count stay as the last validation left them."""
        checkpoint.save_training_state(self.folder, self.model, self._meta({}), self._trainer_state(),
                                       self.config.train.keep_last)
        self.say(f"step {self.step}: saved a checkpoint without validating; 'attend train --resume "
                 f"{self.folder}' goes on from here", always=True)

    @torch.no_grad()
    def _validation_loss(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for indices in bucket_batches(self.valid_examples, self.config.train.batch_tokens):
            batch = collate(self.valid_examples, indices).to(self.device)
            logits = self.model(batch.src, batch.src_mask, batch.tgt_in)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1),
                                     ignore_index=PAD_ID, reduction="sum").item()
            count += batch.n_tgt_tokens
        return total / max(count, 1)

    def _meta(self, result: dict) -> dict:
        return {"step": self.step, "epoch": self.epoch, "family": self.config.model.family,
                "parameters": count_parameters(self.model),
                "valid": {k: v for k, v in result.items() if isinstance(v, float)}}

    def _trainer_state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "target_tokens": self.target_tokens, "best": self.best, "bad_evals": self.bad_evals,
            "train_seconds": self.train_seconds(), "decay_start_s": self.decay_start_s,
            "torch_rng": torch.get_rng_state(), "python_rng": list(random.getstate()[1]),
            # dropout on a GPU draws from the GPU's generator, which the seed alone would restart
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def restore(self, checkpoint_dir: Path, state: dict | None = None) -> None:
        """Continue exactly where a checkpoint left off: weights, optimizer, schedule, data position, RNG
        (`state`: its trainer state, when already read)."""
        meta = checkpoint.read_json(checkpoint_dir / checkpoint.META)
        checkpoint.load_weights(self.model, checkpoint_dir / checkpoint.WEIGHTS, meta.get("sha256"))
        self.validated_on_disk = bool(meta.get("valid"))  # a Ctrl-C checkpoint is validated when the run ends
        state = state if state is not None else checkpoint.load_trainer_state(checkpoint_dir)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
            self.best, self.bad_evals = state["best"], state["bad_evals"]
            self.target_tokens = state.get("target_tokens", 0)  # absent from checkpoints of earlier versions
            self.seconds_before = state.get("train_seconds", 0.0)  # likewise
            self.decay_start_s = state.get("decay_start_s")  # likewise: then the cosine restarts on resuming
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and len(state.get("cuda_rng", [])) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            random.setstate((3, tuple(state["python_rng"]), None))
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise AttendError(f"{checkpoint_dir}: training state does not match this model ({e})") from None
        self.forget_metrics_after(self.step)

    def forget_metrics_after(self, step: int) -> None:
        """Drop the records of steps after `step` from metrics.jsonl: an interrupted run logged them, and the
        resumed run logs them again, so curves would otherwise show those steps twice."""
        path = self.folder / "metrics.jsonl"
        if not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _record_step(line) <= step]
        if len(kept) < len(lines):
            checkpoint.atomic_write(path, "".join(kept))

    # ----- reporting ----------------------------------------------------------------------------
    def say(self, message: str, always: bool = False) -> None:
        """Into train.log, and onto the terminal when a progress bar is shown, or `always` (what a user must
        hear even with --quiet: a learning rate that jumps, a run that starts over, a checkpoint kept)."""
        self._log(message)
        if self.progress:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        elif always:
            print(message, file=sys.stderr)

    def _log(self, message: str) -> None:
        """One timestamped line in train.log (opened per line: no handle outlives the run)."""
        with open(self.folder / "train.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def _stop_if_diverged(self, loss: float, validation: bool = False) -> None:
        """A loss that is no longer a number ends the run before such weights are validated or saved; in fp16
        the gradient scaler skips the steps of an overflowing training loss and goes on, so only the
        validation loss counts there."""
        if math.isfinite(loss) or (self.precision == "fp16" and not validation):
            return
        saved = checkpoint.latest_checkpoint(self.folder)
        raise AttendError(f"training diverged: the {'validation ' * validation}loss is {loss} at step {self.step}; "
                          "lower train.lr or raise train.warmup_steps and train again (the last checkpoint, "
                          f"{saved.name if saved else 'none yet'}, predates it)")

    def _log_window(self, window: LogWindow, bar, start: float, deadline: float) -> None:
        """A metrics.jsonl line (and the progress bar's figures) for the steps since the last one."""
        loss, rate = window.mean_loss(), window.tokens_per_s()
        self._stop_if_diverged(loss)
        self._log_metrics({"step": self.step, "epoch": self.epoch, "target_tokens": self.target_tokens,
                           "loss": loss, "lr": self.scheduler.get_last_lr()[0], "tokens_per_s": rate,
                           "elapsed_s": self.train_seconds()})
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}", epoch=self.epoch)
            self._adjust_total(bar, start, deadline)

    def _log_metrics(self, record: dict) -> None:
        with open(self.folder / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.pictures is not None and "loss" in record:
            self.pictures.training_record(record)

    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        t = self.config.train
        # under a time budget the total is unknown until the speed is: _adjust_total sets it
        timed = 0 < t.max_minutes < float("inf")
        return tqdm(total=None if timed else t.max_steps, initial=self.step, desc="training",
                    unit="step", dynamic_ncols=True)

    def _adjust_total(self, bar, start, deadline) -> None:
        """Under a time budget, show the steps the budget allows, so the ETA is honest."""
        if deadline == float("inf") or bar.n == bar.initial:
            return
        steps_per_s = (self.step - bar.initial) / max(time.time() - start, 1e-9)
        bar.total = min(self.config.train.max_steps, self.step + int(steps_per_s * max(deadline - time.time(), 0)))
        bar.refresh()


def use_threads(threads: int) -> None:
    """train.threads (0: PyTorch's choice), at most the processors this machine has: more only contend (and
    tens of thousands crash PyTorch), and a config may come from a larger machine."""
    available = os.cpu_count() or 1
    if threads > available:
        print(f"attend: note: train.threads={threads}, but this machine has {available} processors; using "
              f"{available}", file=sys.stderr)
        threads = available
    if threads > 0:
        torch.set_num_threads(threads)


def train(config: Config, folder: str | Path, progress: bool = True) -> dict:
    """Train a new model into `folder`, which must not already hold one. Raises `TrainingInterrupted` (a
    KeyboardInterrupt) after saving a checkpoint when Ctrl-C or SIGTERM stopped it."""
    folder = Path(folder)
    checkpoint.require_new_folder(folder, f"use 'attend train --resume {folder}' to continue it, or choose "
                                          "another --out")
    check_batch_budget(config)
    use_threads(config.train.threads)
    d = config.data
    if progress and (d.joint_subwords or "subword" in (d.src_tokenizer, d.tgt_tokenizer)):
        print("reading the corpus and training its subword model (sentencepiece)...", file=sys.stderr, flush=True)
    data = prepare(config)
    with checkpoint.new_run_folder(folder):
        checkpoint.save_static(folder, config, data.src_tokenizer, data.tgt_tokenizer, data.src_vocab,
                               data.tgt_vocab)
        return Trainer(config, folder, data, progress).run()


def check_batch_budget(config: Config, where: str = "the config") -> None:
    """The longest pair must fit the token budget: else it is a batch over the budget, which on a GPU runs
    out of memory long after the start. Checked when training starts, not when a model is loaded."""
    if config.train.batch_tokens < length_limit(config):
        raise AttendError(f"{where}: train.batch_tokens={config.train.batch_tokens} is smaller than the longest pair "
                          f"trained on ({length_limit(config)} tokens: data.max_len, at most model.max_positions); "
                          "raise train.batch_tokens or lower data.max_len")


def _advice(stop_reason: str) -> str:
    """What to raise to train on, for a resumed run that stopped for `stop_reason` before its first step."""
    if stop_reason.startswith("time budget"):
        return "raise --max-minutes to go on"
    if stop_reason.startswith("no improvement"):
        return "raise --patience to go on"
    if stop_reason == "max_steps":
        return "raise --max-steps to go on"
    return "train.max_epochs is spent; a new run with more epochs can go further"
