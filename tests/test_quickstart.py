"""The quickstart path end to end, with a few seconds of training instead of minutes."""

import pytest

from attend.checkpoint import load_model
from attend.errors import AttendError
from attend.quickstart import run


def test_quickstart_trains_scores_and_leaves_a_model(tmp_path, capsys):
    result = run(tmp_path / "g2p", minutes=0.1, progress=False, beam=1)
    out = capsys.readouterr().out
    assert "Standard CMUdict test words" in out and "WER %" in out and "attention" in out
    table = dict(line.rsplit(None, 1) for line in out.splitlines() if line.startswith(("WER %", "PER %")))
    assert table == {"WER %": f"{result['wer']:.2f}", "PER %": f"{result['per']:.2f}"}  # what it printed it scored
    assert load_model(tmp_path / "g2p").config.data.recipe == "g2p-cmudict"
    with pytest.raises(AttendError, match="already exists"):
        run(tmp_path / "g2p", minutes=0.1, progress=False)


def test_a_bad_beam_is_refused_before_training(tmp_path):
    with pytest.raises(AttendError, match="--beam and --nbest must be at least 1"):
        run(tmp_path / "g2p", minutes=5, progress=False, beam=0)
    assert not (tmp_path / "g2p").exists()


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_positive_number_is_refused(tmp_path, minutes):
    with pytest.raises(AttendError, match="--minutes must be a positive number"):
        run(tmp_path / "g2p", minutes=minutes, progress=False)
