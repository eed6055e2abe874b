"""A damaged or missing model folder is reported, never loaded wrong, and never runs code."""

import json
import shutil

import pytest
import torch

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


def test_truncated_weights_without_checksum(copy):
    meta = json.loads((copy / "meta.json").read_text())
    del meta["sha256"]
    (copy / "meta.json").write_text(json.dumps(meta))
    raw = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(AttendError, match="not a valid safetensors file"):
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


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_trainer_state_never_unpickles_code(copy, capsys):
    ckpt = sorted((copy / "checkpoints").glob("step-*"))[-1]
    torch.save({"step": 1, "payload": Exploit()}, ckpt / "trainer.pt")
    with pytest.raises(AttendError, match="cannot be loaded safely"):
        load_trainer_state(ckpt)
    assert "code ran" not in capsys.readouterr().out


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left behind
