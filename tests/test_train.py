"""Training learns, checkpoints round-trip, and a resumed run continues exactly where it stopped."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from attend.checkpoint import TRAINER_STATE, load_model, load_weights, weights_bytes
from attend.data.batching import bucket_batches, collate
from attend.data.vocab import PAD_ID
from attend.errors import AttendError
from attend.inference import Translator
from attend.models import build_model
from attend.recipes.synthetic import make_pairs
from attend.resume import resume
from attend.train import Trainer, learning_rate_factor, prepare, train
from conftest import tiny_config


def held_out_accuracy(folder, task: str) -> float:
    pairs = make_pairs(task, 300, 8, 6, seed=99)  # the training pairs come from seed 1
    outputs = Translator(load_model(folder)).best([s for s, _ in pairs])
    return sum(o == t for o, (_, t) in zip(outputs, pairs)) / len(pairs)


def test_attention_rnn_learns_reverse(tmp_path):
    cfg = tiny_config("rnn-attention", model={"hidden_size": 128},
                      train={"max_steps": 400, "eval_every": 100, "lr": 0.005, "schedule": "cosine"})
    summary = train(cfg, tmp_path / "m", progress=False)
    assert held_out_accuracy(tmp_path / "m", "reverse") >= 0.99, summary


def test_transformer_learns_copy(tmp_path):
    cfg = tiny_config("transformer", data={"recipe": "copy"},
                      train={"max_steps": 400, "eval_every": 100, "lr": 0.003, "warmup_steps": 50, "schedule": "cosine"})
    summary = train(cfg, tmp_path / "m", progress=False)
    assert held_out_accuracy(tmp_path / "m", "copy") >= 0.99, summary


def test_plain_rnn_learns_copy(tmp_path):
    cfg = tiny_config("rnn", data={"recipe": "copy", "synthetic_max_len": 4}, train={"max_steps": 300, "eval_every": 150, "lr": 0.01})
    summary = train(cfg, tmp_path / "m", progress=False)
    assert summary["best"] >= 75.0, summary  # on inputs training never showed; its bottleneck keeps it near 85


def test_a_run_shorter_than_a_log_window_still_logs_its_loss_and_rate(tmp_path):
    train(tiny_config(train={"max_steps": 7, "eval_every": 7, "log_every": 50}), tmp_path / "m", progress=False)
    records = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    rated = [r for r in records if "tokens_per_s" in r]
    assert [r["step"] for r in rated] == [7] and rated[0]["tokens_per_s"] > 0


def test_model_folder_contents_and_logs(trained_folder):
    names = {p.name for p in trained_folder.iterdir()}
    assert {"config.yaml", "vocab.json", "tokenizers.json", "model.safetensors", "meta.json", "train.log",
            "metrics.jsonl", "checkpoints"} <= names
    records = [json.loads(line) for line in (trained_folder / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in r and "tokens_per_s" in r for r in records)
    assert any("valid" in r for r in records)
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0] / 2  # it learned something
    assert len(list((trained_folder / "checkpoints").glob("step-*"))) == 2  # keep_last


def test_weights_round_trip_keeps_outputs_and_tied_embeddings(trained_folder):
    loaded = load_model(trained_folder)
    fresh = build_model(loaded.config.model, len(loaded.src_vocab), len(loaded.tgt_vocab)).eval()
    path = trained_folder.parent / "copy.safetensors"
    path.write_bytes(weights_bytes(loaded.model))
    load_weights(fresh, path)
    assert fresh.out.weight.data_ptr() == fresh.tgt_embed.tokens.weight.data_ptr()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name
    lines = ["a b c", "d e f g"]
    assert Translator(loaded).best(lines) == Translator(loaded.__class__(**{**loaded.__dict__, "model": fresh})).best(lines)


def test_resume_continues_exactly(tmp_path):
    cfg = lambda steps: tiny_config("transformer", model={"dropout": 0.2},
                                    train={"max_steps": steps, "eval_every": 20, "keep_last": 5})
    train(cfg(40), tmp_path / "straight", progress=False)
    train(cfg(20), tmp_path / "stopped", progress=False)
    before = torch.load(tmp_path / "stopped/checkpoints/step-00000020" / TRAINER_STATE, weights_only=True)
    summary = resume(tmp_path / "stopped", progress=False, max_steps=40)
    assert summary["step"] == 40
    # the training time reported is that of both runs (the first up to its checkpoint), not the last one's alone
    assert before["train_seconds"] > 0
    assert summary["train_seconds"] == pytest.approx(60 * summary["minutes"] + before["train_seconds"], abs=0.05)
    a = (tmp_path / "straight/checkpoints/step-00000040/model.safetensors").read_bytes()
    b = (tmp_path / "stopped/checkpoints/step-00000040/model.safetensors").read_bytes()
    assert a == b
    # the count of target tokens trained on carries over too, so curves of resumed runs line up
    last_valid = lambda run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
                              if "valid" in line][-1]
    assert last_valid("stopped")["target_tokens"] == last_valid("straight")["target_tokens"] > 0


def test_resuming_with_a_larger_budget_says_the_learning_rate_rises_again(tmp_path):
    cfg = tiny_config("transformer", train={"max_steps": 40, "eval_every": 10, "warmup_steps": 10,
                                            "schedule": "cosine"})
    folder = tmp_path / "cosine"
    train(cfg, folder, progress=False)
    resume(folder, progress=False, max_steps=60)
    log = (folder / "train.log").read_text()
    # at step 40 of 40 the cosine is at zero; stretched to 60 steps, 30 of its 50 decay steps are done:
    # 0.005 * (1 + cos(0.6 pi)) / 2 = 0.00173
    assert "resuming at step 40: the cosine schedule now runs to step 60, so the learning rate goes from 0 to 0.00173" in log
    # interrupted after step 50, a plain resume keeps the raised budget and its schedule: nothing to say
    shutil.rmtree(folder / "checkpoints/step-00000060")
    assert resume(folder, progress=False)["step"] == 60
    assert (folder / "train.log").read_text().count("resuming at step") == 1
    # resumed once more with its budget spent, it trains nothing and leaves its checkpoints as they were
    saved = (folder / "checkpoints/step-00000060/model.safetensors").stat().st_mtime_ns
    summary = resume(folder, progress=False)
    assert summary["step"] == 60 and summary["stop_reason"].startswith("nothing left to train: max_steps; raise --max-steps")
    assert (folder / "checkpoints/step-00000060/model.safetensors").stat().st_mtime_ns == saved


def test_resuming_an_interrupted_run_logs_each_step_once(tmp_path):
    # a run killed after its step-20 checkpoint had logged up to step 40 and half a line; it resumes at 20
    cfg = tiny_config("transformer", train={"max_steps": 40, "eval_every": 20, "log_every": 10})
    folder = tmp_path / "interrupted"
    train(cfg, folder, progress=False)
    shutil.rmtree(folder / "checkpoints/step-00000040")
    with open(folder / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 4')
    resume(folder, progress=False)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    training_steps = [r["step"] for r in records if "loss" in r]
    validation_steps = [r["step"] for r in records if "valid" in r]
    assert training_steps == [10, 20, 30, 40] and validation_steps == [20, 40]


def test_training_into_an_existing_folder_is_refused(trained_folder):
    before = (trained_folder / "model.safetensors").read_bytes()
    with pytest.raises(AttendError, match="already exists and is not empty; use 'attend train --resume"):
        train(tiny_config(), trained_folder, progress=False)
    assert (trained_folder / "model.safetensors").read_bytes() == before


def test_too_long_training_pairs_are_skipped_and_counted(tmp_path):
    (tmp_path / "c.tsv").write_text("a b\tb a\n" * 50 + ("x " * 100 + "\ty\n") * 3 + "\tb\na \t \n")
    cfg = tiny_config(data={"recipe": None, "train_src": str(tmp_path / "c.tsv"), "valid_src": str(tmp_path / "c.tsv"),
                            "max_len": 20}, train={"max_steps": 2, "eval_every": 2})
    train(cfg, tmp_path / "m", progress=False)
    log = (tmp_path / "m/train.log").read_text()
    assert "50 pairs (3 skipped as too long, 2 with an empty side)" in log  # empty sides hint at misaligned files
    assert "50 validation inputs (3 skipped as too long, 2 with an empty side)" in log


def test_auto_precision_is_fp32_unless_bf16_is_measured_faster(monkeypatch):
    from attend import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert device.resolve_precision("auto", cpu) == "fp32"  # no bf16 instructions: never bf16
    assert device.resolve_precision("bf16", cpu) == "bf16"  # an explicit choice is kept
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    fast = {torch.float32: 100.0, torch.bfloat16: 300.0}
    monkeypatch.setattr(device, "matmul_gflops", lambda dtype: fast[dtype])
    assert device.resolve_precision("auto", cpu) == "bf16"
    fast[torch.bfloat16] = 1.0  # emulated bf16: a hundred times slower
    assert device.resolve_precision("auto", cpu) == "fp32"


def test_bf16_training_learns(tmp_path):
    """bf16 autocast runs the real training path (slowly where emulated) and still learns."""
    summary = train(tiny_config("rnn-attention", train={"precision": "bf16", "max_steps": 40, "eval_every": 40}),
                    tmp_path / "bf16", progress=False)
    records = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r and "valid" not in r]
    assert losses[-1] < losses[0] and summary["step"] == 40
    assert "in bf16" in (tmp_path / "bf16" / "train.log").read_text()


def test_clock_cosine_decays_from_the_end_of_warmup(tmp_path):
    """Under a time budget the cosine starts at the peak rate when warm-up ends and decays over the time
    left, however much of the budget warm-up took (on a slow CPU it can take nearly half)."""
    config = tiny_config(train={"schedule": "cosine", "warmup_steps": 10, "max_minutes": 10, "max_steps": 10_000})
    trainer = Trainer(config, tmp_path, prepare(config), progress=False)
    trainer.started, trainer.step = time.time() - 400, 10  # warm-up took 400 of the 600 s
    assert learning_rate_factor(11, config.train, trainer._time_fraction()) == pytest.approx(1.0, abs=0.01)
    assert trainer.decay_start_s == pytest.approx(400, abs=1)
    trainer.started -= 100  # half of the 200 s from warm-up's end to the end of the budget has passed
    assert trainer._time_fraction() == pytest.approx(0.5, abs=0.01)
    assert learning_rate_factor(500, config.train, trainer._time_fraction()) == pytest.approx(0.5, abs=0.01)


def test_a_resumed_time_budget_goes_on_with_its_schedule(tmp_path):
    """The budget and its cosine count the training time of every sitting: a run stopped after 40 steps goes
    on where its clock stood, not from the peak rate with a fresh budget."""
    config = tiny_config(train={"schedule": "cosine", "warmup_steps": 10, "max_minutes": 10, "max_steps": 40,
                                "eval_every": 20})
    train(config, tmp_path / "m", progress=False)
    ckpt = tmp_path / "m/checkpoints/step-00000040"
    state = torch.load(ckpt / TRAINER_STATE, weights_only=True)
    state["train_seconds"], state["decay_start_s"] = 500.0, 300.0  # as if it had trained 500 of its 600 s
    torch.save(state, ckpt / TRAINER_STATE)
    trainer = Trainer(config, tmp_path / "m", prepare(config), progress=False)
    trainer.restore(ckpt)
    trainer.config.train.max_steps = 1000  # so that only the clock ends the cosine
    # two thirds of the 300 s after warm-up have passed: the cosine is at a quarter of the peak
    assert learning_rate_factor(41, config.train, trainer._time_fraction()) == pytest.approx(0.25, abs=0.01)
    trainer.seconds_before = 601.0  # the budget is spent: the resumed run trains no further step
    summary = trainer.run()
    assert summary["step"] == 40 and summary["stop_reason"].startswith("nothing left to train: time budget of 10")


def test_a_run_that_fails_before_its_first_checkpoint_leaves_the_folder_as_it_found_it(tmp_path, monkeypatch):
    """Else a rerun is refused ("not empty") and --resume finds nothing to resume: the user is stuck."""
    with pytest.raises(AttendError, match="fp16 needs a GPU"):
        train(tiny_config(train={"precision": "fp16"}), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttendError, match="fp16 needs a GPU"):
        train(tiny_config(train={"precision": "fp16"}), tmp_path / "empty", progress=False)
    assert list((tmp_path / "empty").iterdir()) == []
    # Ctrl-C at step 5, long before the first validation
    steps = []
    original = Trainer._train_step

    def interrupted(self, batch):
        steps.append(self.step)
        if len(steps) == 5:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert train(tiny_config(train={"max_steps": 4, "eval_every": 4}), tmp_path / "new", progress=False)["step"] == 4


def test_a_new_run_that_trains_no_step_still_leaves_a_model(tmp_path):
    summary = train(tiny_config(train={"max_minutes": 1e-9}), tmp_path / "m", progress=False)
    assert summary["step"] == 0 and summary["best"] is not None
    assert summary["stop_reason"].startswith("time budget")
    assert (tmp_path / "m/model.safetensors").is_file() and (tmp_path / "m/checkpoints/step-00000000").is_dir()


def test_a_changed_budget_that_cannot_load_or_is_spent_is_refused_and_config_kept(tmp_path):
    folder = tmp_path / "m"
    train(tiny_config(train={"max_steps": 4, "eval_every": 4}), folder, progress=False)
    before = (folder / "config.yaml").read_text()
    with pytest.raises(AttendError, match="the changed settings: train.max_minutes must be 0 or more, got nan"):
        resume(folder, progress=False, max_minutes=float("nan"))
    with pytest.raises(AttendError, match="--max-steps 3 is not above step 4, where this run stands"):
        resume(folder, progress=False, max_steps=3)
    assert (folder / "config.yaml").read_text() == before


def test_a_run_that_stopped_early_resumes_only_with_more_patience(tmp_path):
    folder = tmp_path / "m"
    config = tiny_config(train={"max_steps": 200, "eval_every": 2, "patience": 1, "lr": 1e-9, "warmup_steps": 0})
    first = train(config, folder, progress=False)  # at a learning rate of 1e-9 nothing improves
    assert first["stop_reason"] == "no improvement in 1 evaluations" and first["step"] == 4
    kept = sorted(p.name for p in (folder / "checkpoints").iterdir())
    again = resume(folder, progress=False)  # trains nothing, and so pushes out no checkpoint
    assert again["step"] == 4 and "raise --patience to go on" in again["stop_reason"]
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == kept
    with pytest.raises(AttendError, match="--patience 1 is not above the 1 evaluation without improvement"):
        resume(folder, progress=False, patience=1)
    more = resume(folder, progress=False, patience=3)
    assert more["step"] == 8 and more["stop_reason"] == "no improvement in 3 evaluations"


def test_a_folder_whose_run_was_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path):
    folder = tmp_path / "m"
    train(tiny_config(train={"max_steps": 4, "eval_every": 4}), folder, progress=False)
    for name in ("checkpoints", "model.safetensors", "meta.json"):  # as a SIGKILL before step 4 leaves it
        shutil.rmtree(folder / name) if name == "checkpoints" else (folder / name).unlink()
    with pytest.raises(AttendError, match="no weights yet .* --resume .* trains it from the start"):
        load_model(folder)  # what translate and info say of such a folder
    summary = resume(folder, progress=False)
    assert summary["step"] == 4 and (folder / "model.safetensors").is_file()
    assert "has no checkpoint yet" in (folder / "train.log").read_text()


def test_a_diverging_run_stops_with_one_line(tmp_path):
    config = tiny_config(train={"lr": 1e30, "warmup_steps": 0, "log_every": 2, "max_steps": 40, "eval_every": 40})
    with pytest.raises(AttendError, match="training diverged: the loss is nan at step"):
        train(config, tmp_path / "m", progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_after_a_step_with_a_checkpoint_and_resume_goes_on(tmp_path):
    """What `timeout`, Slurm or `docker stop` send: the steps since the last validation are kept."""
    (tmp_path / "c.yaml").write_text(
        "data: {recipe: reverse, synthetic_size: 2000, synthetic_vocab: 8, synthetic_max_len: 6}\n"
        "model: {family: transformer, hidden_size: 32, embed_dim: 32, ff_size: 64, encoder_layers: 1, "
        "decoder_layers: 1, heads: 2, max_positions: 64}\n"
        "train: {max_steps: 100000, eval_every: 100000, log_every: 5, batch_tokens: 400, precision: fp32, "
        "threads: 1, pictures: false}\n")
    folder = tmp_path / "m"
    process = subprocess.Popen([sys.executable, "-m", "attend.cli", "train", str(tmp_path / "c.yaml"), "--out",
                                str(folder), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (folder / "metrics.jsonl").is_file() and time.time() < deadline:  # the first logged steps
        time.sleep(0.2)
    assert (folder / "metrics.jsonl").is_file(), "training did not log within 120 s"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted by SIGTERM" in out and "(again to stop at once)" in err
    saved = sorted((folder / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and int(saved[0].name[5:]) >= 5
    assert (saved[0].stat().st_mode & 0o777) == (folder.stat().st_mode & 0o777)  # as shared as the run's folder
    stopped = int(saved[0].name[5:])
    summary = resume(folder, progress=False, max_steps=stopped + 3)
    assert summary["step"] == stopped + 3


def test_the_first_loss_logged_after_a_resume_averages_its_own_steps(tmp_path):
    """Resumed at step 15 with losses logged every 10 steps, the window up to step 20 holds 5 steps, not 10."""
    cfg = tiny_config(train={"max_steps": 15, "eval_every": 15, "log_every": 10, "lr": 1e-9})  # a flat loss
    folder = tmp_path / "m"
    train(cfg, folder, progress=False)
    resume(folder, progress=False, max_steps=30)
    losses = {r["step"]: r["loss"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
              if "loss" in r}
    assert sorted(losses) == [10, 15, 20, 30]  # 15: the first sitting's last steps, logged as it stopped
    assert losses[20] == pytest.approx(losses[30], rel=0.1) and losses[20] == pytest.approx(losses[10], rel=0.1)


def test_validation_that_cannot_be_scored_is_named_before_training(tmp_path):
    (tmp_path / "train.tsv").write_text("a b\tb a\n" * 50)
    (tmp_path / "valid.tsv").write_text(("x " * 30 + "\ty\n") * 4)
    cfg = tiny_config(data={"recipe": None, "train_src": str(tmp_path / "train.tsv"),
                            "valid_src": str(tmp_path / "valid.tsv"), "max_len": 20})
    with pytest.raises(AttendError, match=r"none of the 4 validation pairs can be scored \(4 skipped as too long; "
                                          "the longest input a model takes is 19 tokens"):
        train(cfg, tmp_path / "m", progress=False)


def test_an_empty_first_validation_line_does_not_stop_the_pictures(tmp_path):
    (tmp_path / "train.tsv").write_text("a b\tb a\nc d e\te d c\n" * 40)
    (tmp_path / "valid.tsv").write_text("\tnothing\na b\tb a\nc d e\te d c\n")
    cfg = tiny_config(data={"recipe": None, "train_src": str(tmp_path / "train.tsv"),
                            "valid_src": str(tmp_path / "valid.tsv")},
                      train={"max_steps": 4, "eval_every": 4, "pictures": True})
    train(cfg, tmp_path / "m", progress=False)
    assert any((tmp_path / "m/pictures").glob("*.png"))


def first_batch(trainer):
    return collate(trainer.data.examples, bucket_batches(trainer.data.examples, 800)[0])


def test_the_training_loss_is_label_smoothed_cross_entropy_per_target_token(tmp_path):
    config = tiny_config(train={"label_smoothing": 0.1, "clip_norm": 0.0})
    trainer = Trainer(config, tmp_path, prepare(config), progress=False)
    batch = first_batch(trainer)
    trainer.model.train()  # dropout is 0, so this forward pass is the step's own
    with torch.no_grad():
        logits = trainer.model(batch.src, batch.src_mask, batch.tgt_in)  # (batch, tgt_len, vocab)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1),
                                                 ignore_index=PAD_ID, label_smoothing=0.1,
                                                 reduction="sum") / batch.n_tgt_tokens
    assert float(trainer._train_step(batch)) == pytest.approx(float(expected), rel=1e-5)


def test_gradients_are_clipped_to_clip_norm(tmp_path):
    config = tiny_config(train={"clip_norm": 0.01})
    trainer = Trainer(config, tmp_path, prepare(config), progress=False)
    trainer._train_step(first_batch(trainer))
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.model.parameters() if p.grad is not None]))
    assert norm <= 0.01 * 1.001


def test_warmup_rises_linearly_and_inverse_sqrt_halves_at_four_times_warmup():
    t = tiny_config(train={"warmup_steps": 10, "schedule": "inverse_sqrt"}).train
    assert learning_rate_factor(0, t) == pytest.approx(0.1)
    assert learning_rate_factor(9, t) == pytest.approx(1.0)
    assert learning_rate_factor(39, t) == pytest.approx(0.5)


def test_a_token_budget_below_the_longest_pair_is_refused_when_training_but_not_when_loading(trained_folder, tmp_path):
    # the longest pair would be a batch over the budget, which on a GPU runs out of memory long after the start
    with pytest.raises(AttendError, match=r"train\.batch_tokens=50 is smaller than the longest pair trained on \(64"):
        train(tiny_config(train={"batch_tokens": 50}), tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()
    older = tmp_path / "older"  # a folder trained before the check: it still loads and translates
    shutil.copytree(trained_folder, older)
    config = (older / "config.yaml").read_text()
    (older / "config.yaml").write_text(config.replace("batch_tokens: 800", "batch_tokens: 50"))
    assert "batch_tokens: 50" in (older / "config.yaml").read_text()
    assert load_model(older).config.train.batch_tokens == 50


def test_ctrl_c_saves_a_checkpoint_and_still_stops_the_caller(tmp_path, monkeypatch):
    """A program that calls train() stops as it did before (a KeyboardInterrupt), but the steps are kept."""
    from attend.train import TrainingInterrupted

    original = Trainer._train_step

    def step_then_ctrl_c(self, batch):
        loss = original(self, batch)
        if self.step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal, taken by the training loop's handler
        return loss

    monkeypatch.setattr(Trainer, "_train_step", step_then_ctrl_c)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny_config(train={"max_steps": 100, "eval_every": 50}), tmp_path / "m", progress=False)
    assert isinstance(stopped.value, KeyboardInterrupt) and stopped.value.summary["step"] == 7
    assert [p.name for p in (tmp_path / "m/checkpoints").iterdir()] == ["step-00000007"]
    with pytest.raises(AttendError, match="no validated weights yet .* --last 1 --out DIR' makes a model of its step-00000007"):
        load_model(tmp_path / "m")  # what translate, info and explain meet before the first validation
    from attend.average import average_checkpoints

    assert load_model(average_checkpoints(tmp_path / "m", tmp_path / "last", last=1)[0]).meta["averaged_steps"] == [7]
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert resume(tmp_path / "m", progress=False, max_steps=9)["step"] == 9


def test_an_averaged_model_is_not_resumed_from_scratch(trained_folder, tmp_path):
    from attend.average import average_checkpoints

    out, _ = average_checkpoints(trained_folder, tmp_path / "avg", last=2)
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(AttendError, match="has no checkpoints/step-\\* to resume from, and holds meta.json, "
                                          "model.safetensors: not a run stopped"):
        resume(out, progress=False)
    assert (out / "model.safetensors").read_bytes() == weights


def test_weights_that_diverge_between_log_lines_are_never_validated_as_best(tmp_path):
    config = tiny_config(train={"lr": 1e30, "warmup_steps": 0, "log_every": 6, "eval_every": 4, "max_steps": 40})
    with pytest.raises(AttendError, match="training diverged"):
        train(config, tmp_path / "m", progress=False)
    assert not (tmp_path / "m/model.safetensors").exists()


def test_more_threads_than_processors_are_capped_with_a_note(capsys):
    from attend.train import use_threads

    before = torch.get_num_threads()
    try:
        use_threads(100_000)  # tens of thousands crash PyTorch's thread pool
        assert torch.get_num_threads() == (os.cpu_count() or 1)
        assert f"using {os.cpu_count() or 1}" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_a_checkpoint_saved_without_validation_is_validated_when_a_resumed_run_has_nothing_left(tmp_path, monkeypatch):
    original = Trainer._train_step

    def step_then_ctrl_c(self, batch):
        loss = original(self, batch)
        if self.step == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "_train_step", step_then_ctrl_c)
    config = tiny_config(train={"max_steps": 100, "eval_every": 50})
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "m", progress=False)
    monkeypatch.setattr(Trainer, "_train_step", original)
    config.train.max_steps = 7  # as if the step or time budget had run out with that interrupted step
    trainer = Trainer(config, tmp_path / "m", prepare(config), progress=False)
    trainer.restore(tmp_path / "m/checkpoints/step-00000007")
    summary = trainer.run()
    assert summary["step"] == 7 and not summary["stop_reason"].startswith("nothing left")
    assert load_model(tmp_path / "m").meta["step"] == 7  # validated, and so the model's weights


def test_one_folder_takes_one_run_at_a_time(trained_folder, tmp_path):
    from attend.checkpoint import run_lock

    folder = tmp_path / "m"
    shutil.copytree(trained_folder, folder)
    with run_lock(folder):  # as a run in progress holds it
        with pytest.raises(AttendError, match="another attend train is running in it"):
            resume(folder, progress=False, max_steps=200)
    assert resume(folder, progress=False, max_steps=151)["step"] == 151


def test_a_failed_run_into_a_linked_folder_leaves_the_link_and_an_empty_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(AttendError, match="fp16 needs a GPU"):
        train(tiny_config(train={"precision": "fp16"}), tmp_path / "link", progress=False)
    assert (tmp_path / "link").is_symlink() and list((tmp_path / "real").iterdir()) == []
