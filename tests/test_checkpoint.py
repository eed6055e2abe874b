"""A damaged or missing model folder is reported, never loaded wrong, and never runs code."""

import errno
import hashlib
import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file as load_safetensors_file
from safetensors.torch import save as save_safetensors

from attend.checkpoint import atomic_write, load_model, load_trainer_state
from attend.errors import AttendError


@pytest.fixture
def copy(trained_folder, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(trained_folder, target)
    return target


def test_missing_folder():
    with pytest.raises(AttendError, match="model folder not found; train one"):
        load_model("/nonexistent/model")


def test_flipped_byte_in_weights_is_caught_by_checksum(copy):
    raw = bytearray((copy / "model.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(AttendError, match="model.safetensors: checksum mismatch"):
        load_model(copy)


def test_truncated_weights(copy):
    raw = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(AttendError, match="not a valid safetensors file"):
        load_model(copy)


def test_weights_check_themselves_whatever_meta_json_says(copy):
    """An interruption between replacing the weights and meta.json leaves an older meta.json beside newer
    weights: the weights still load, since their checksum travels in their own header."""
    first = sorted((copy / "checkpoints").glob("step-*"))[0]
    shutil.copyfile(first / "meta.json", copy / "meta.json")
    loaded = load_model(copy)
    assert loaded.meta["step"] == json.loads((first / "meta.json").read_text())["step"]
    assert (copy / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()


def test_weights_of_earlier_versions_are_checked_against_meta_json(copy):
    """Folders written before the weights carried a checksum keep the sha256 of the whole file in meta.json."""
    tensors = load_safetensors_file(copy / "model.safetensors")
    with safe_open(copy / "model.safetensors", "pt") as f:
        aliases = json.loads(f.metadata()["attend"])["aliases"]
    raw = save_safetensors(tensors, {"aliases": json.dumps(aliases)})
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "sha256": hashlib.sha256(raw).hexdigest()}))
    (copy / "model.safetensors").write_bytes(raw)
    load_model(copy)
    damaged = bytearray(raw)
    damaged[len(damaged) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(AttendError, match="model.safetensors: checksum mismatch"):
        load_model(copy)


def test_weights_that_do_not_fit_the_config(copy):
    text = (copy / "config.yaml").read_text().replace("hidden_size: 64", "hidden_size: 128")
    (copy / "config.yaml").write_text(text)
    meta = json.loads((copy / "meta.json").read_text())
    with pytest.raises(AttendError, match="weights do not fit the model in config.yaml"):
        load_model(copy)
    assert meta  # the folder itself is untouched


def test_corrupt_config_and_json(copy):
    (copy / "vocab.json").write_text("{not json")
    with pytest.raises(AttendError, match=r"vocab\.json: corrupt JSON"):
        load_model(copy)
    (copy / "config.yaml").write_text("model: [unclosed")
    with pytest.raises(AttendError, match=r"config\.yaml: corrupt"):
        load_model(copy)


def test_missing_files(copy):
    (copy / "tokenizers.json").unlink()
    with pytest.raises(AttendError, match=r"tokenizers\.json: missing"):
        load_model(copy)


def test_damaged_tokenizers_are_named(copy):
    tokenizers = json.loads((copy / "tokenizers.json").read_text())
    (copy / "tokenizers.json").write_text(json.dumps({**tokenizers, "src": "word"}))
    with pytest.raises(AttendError, match=r"tokenizers\.json: no 'src' tokenizer in it; the folder is damaged"):
        load_model(copy)
    (copy / "tokenizers.json").write_text(json.dumps({**tokenizers, "src": {"kind": "subword"}}))
    (copy / "src.spm").write_bytes(b"garbage, not a sentencepiece model")
    with pytest.raises(AttendError, match=r"src\.spm: not a sentencepiece model"):
        load_model(copy)


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_trainer_state_never_unpickles_code(copy, capsys):
    ckpt = sorted((copy / "checkpoints").glob("step-*"))[-1]
    torch.save({"step": 1, "payload": Exploit()}, ckpt / "trainer.pt")
    with pytest.raises(AttendError, match="cannot be loaded safely"):
        load_trainer_state(ckpt)
    assert "code ran" not in capsys.readouterr().out


def test_a_failed_write_is_one_line_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(AttendError, match=r"file/x\.json: cannot write there \(Not a directory\)"):
        atomic_write(tmp_path / "file" / "x.json", "{}")
    target = tmp_path / "f.txt"
    atomic_write(target, "old")

    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("os.replace", disk_full)  # a full disk cannot be made here on demand
    with pytest.raises(AttendError, match=r"f\.txt: cannot write \(No space left on device\); the old file"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "file"]  # no temporary file left behind


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left behind


def test_averaging_more_checkpoints_than_kept_is_the_mean_of_those_kept(trained_folder, tmp_path):
    """Runs without the Multi30k data too; --last 5 over a run that kept 2 divides by 2."""
    from attend.average import average_checkpoints

    out, chosen = average_checkpoints(trained_folder, tmp_path / "avg", last=5)
    assert len(chosen) == 2
    a, b = (load_model(trained_folder, weights_from=c).model.state_dict() for c in chosen)
    averaged = load_model(out).model.state_dict()
    for name in ("out.bias", "out.weight"):
        torch.testing.assert_close(averaged[name], (a[name] + b[name]) / 2)
