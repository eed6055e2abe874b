"""Every shipped config loads and builds its model, so a typo in configs/ fails here, not for a user."""

from pathlib import Path

import pytest

from attend.config import load_config
from attend.models import build_model
from attend.quickstart import default_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_builds(path):
    config = load_config(path)
    assert build_model(config.model, 40, 45) is not None


def test_quickstart_is_the_g2p_recipe_under_a_time_budget():
    config = default_config()
    assert config.data.recipe == "g2p-cmudict" and config.data.metric == "wer"
    assert 0 < config.train.max_minutes <= 8  # leaves room for scoring 12k words within 10 minutes
