"""The quickstart path end to end, with a few seconds of training instead of minutes."""

import pytest

from attend.checkpoint import load_model
from attend.errors import AttendError
from attend.quickstart import run


def test_quickstart_trains_scores_and_leaves_a_model(tmp_path, capsys):
    result = run(tmp_path / "g2p", minutes=0.1, progress=False, beam=1)
    out = capsys.readouterr().out
    assert "Standard CMUdict test words" in out and "WER %" in out and "attention" in out
    assert 0.0 <= result["wer"] <= 100.0 and result["per"] > 0.0
    assert load_model(tmp_path / "g2p").config.data.recipe == "g2p-cmudict"
    with pytest.raises(AttendError, match="already exists"):
        run(tmp_path / "g2p", minutes=0.1, progress=False)


def test_a_bad_beam_is_refused_before_training(tmp_path):
    with pytest.raises(AttendError, match="--beam and --nbest must be at least 1"):
        run(tmp_path / "g2p", minutes=5, progress=False, beam=0)
    assert not (tmp_path / "g2p").exists()
