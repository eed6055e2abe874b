"""The benchmark scripts' own arithmetic: the figures the README's tables are made of."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import their neighbour variants.py
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_training_rate_is_total_tokens_over_total_time():
    # 1,000 target tokens at 100 tokens/s (10 s), then 1,000 at 300 (3.3 s): 150 tokens/s, where the plain
    # mean of the two rates would say 200
    windows = [{"target_tokens": 1000, "tokens_per_s": 100.0}, {"target_tokens": 2000, "tokens_per_s": 300.0}]
    assert script("multi30k").training_rate(windows) == pytest.approx(150.0)
    assert script("multi30k").training_rate([]) == 0.0
