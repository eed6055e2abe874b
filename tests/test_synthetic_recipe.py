"""The synthetic tasks of tests and demos: validation measures inputs that training never showed."""

import pytest

from attend.errors import AttendError
from attend.recipes.synthetic import load


def test_validation_inputs_are_not_training_inputs():
    task = load("reverse", 2000, 8, 6)
    train_inputs = {s for s, _ in task.train}
    assert len(task.valid) == 100 and not train_inputs & {s for s, _ in task.valid}
    assert all(refs == [" ".join(s.split()[::-1])] for s, refs in task.valid)


def test_a_space_too_small_to_hold_unseen_inputs_is_one_line():
    with pytest.raises(AttendError, match="leaving none to validate on"):
        load("copy", 200, 2, 2)  # 6 possible inputs, all in training
