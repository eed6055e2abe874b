import pytest

from attend.config import config_from_dict, load_config, sequence_limit, with_overrides
from attend.errors import AttendError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "data: {recipe: reverse}\nmodel: {family: rnn-attention, attention: dot}\n"))
    assert cfg.model.family == "rnn-attention" and cfg.model.attention == "dot"
    assert cfg.train.optimizer == "adam"


def test_misspelled_key_names_key_and_suggests(tmp_path):
    path = write(tmp_path, "data: {recipe: reverse}\nmodel: {atention: dot}\n")
    with pytest.raises(AttendError, match=r"c\.yaml: unknown key 'model\.atention'; did you mean 'model\.attention'"):
        load_config(path)


def test_a_key_in_the_wrong_section_names_the_right_one(tmp_path):
    with pytest.raises(AttendError, match=r"c\.yaml: unknown key 'model\.lr'; it is a key of another section: 'train\.lr'"):
        load_config(write(tmp_path, "data: {recipe: reverse}\nmodel: {lr: 0.01}\n"))
    with pytest.raises(AttendError, match=r"c\.yaml: data\.recipe must be one of g2p-cmudict, reverse, copy; got 'nope'"):
        load_config(write(tmp_path, "data: {recipe: nope}\n"))


def test_unknown_section(tmp_path):
    with pytest.raises(AttendError, match="unknown key 'trian'; did you mean 'train'"):
        load_config(write(tmp_path, "data: {recipe: reverse}\ntrian: {lr: 1}\n"))


def test_wrong_type_and_bad_choice():
    with pytest.raises(AttendError, match="'train.lr' must be float, got 'fast'"):
        config_from_dict({"data": {"recipe": "reverse"}, "train": {"lr": "fast"}})
    with pytest.raises(AttendError, match="model.family must be one of rnn, rnn-attention, transformer; got 'lstm'"):
        config_from_dict({"data": {"recipe": "reverse"}, "model": {"family": "lstm"}})
    with pytest.raises(AttendError, match="divisible by model.heads"):
        config_from_dict({"data": {"recipe": "reverse"}, "model": {"hidden_size": 30, "heads": 4}})


def test_numbers_in_scientific_notation_are_read_as_numbers(tmp_path):
    cfg = load_config(write(tmp_path, "data: {recipe: reverse}\ntrain: {lr: 5e-4, weight_decay: 1E-2}\n"))
    assert (cfg.train.lr, cfg.train.weight_decay) == (5e-4, 0.01)  # YAML 1.1 alone reads both as strings


@pytest.mark.parametrize("train, message", [
    ("betas: [1.0, 0.98]", r"train.betas must be two numbers in \[0, 1\), got \[1.0, 0.98\]"),
    ("betas: [0.9, fast]", "train.betas must be two numbers"),
    ("weight_decay: -0.1", "train.weight_decay must be 0 or more, got -0.1"),
    ("warmup_steps: -5", "train.warmup_steps must be 0 or more"),
    ("max_minutes: -1", "train.max_minutes must be 0 or more"),
    ("clip_norm: .nan", "train.clip_norm must be 0 or more, got nan"),  # NaN would turn clipping off unsaid
    ("lr: .nan", "train.lr must be above 0, got nan"),
    ("lr: .inf", "train.lr must be above 0, got inf"),
    ("seed: 18446744073709551616", "train.seed must be from 0 to 2\\*\\*63 - 1"),
])
def test_out_of_range_optimizer_settings_are_named(tmp_path, train, message):
    with pytest.raises(AttendError, match=message):
        load_config(write(tmp_path, f"data: {{recipe: reverse}}\ntrain: {{{train}}}\n"))


def test_malformed_yaml_names_line(tmp_path):
    with pytest.raises(AttendError, match=r"c\.yaml: line 3: malformed YAML"):
        load_config(write(tmp_path, "data:\n  recipe: reverse\n  bad: a: b\n"))


def test_missing_data_source():
    with pytest.raises(AttendError, match="data needs either 'recipe' or 'train_src'"):
        config_from_dict({"model": {"family": "rnn"}})


def test_missing_file(tmp_path):
    with pytest.raises(AttendError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_change_values_and_keep_the_rest(tmp_path):
    cfg = load_config(write(tmp_path, "data: {recipe: reverse}\nmodel: {family: transformer, dropout: 0.1}\n"))
    changed = with_overrides(cfg, ["model.dropout=0.3", "train.betas=[0.9, 0.99]", "model.norm=post", "train.lr=5e-4"])
    assert (changed.model.dropout, changed.train.betas, changed.model.norm) == (0.3, (0.9, 0.99), "post")
    assert changed.train.lr == 5e-4  # YAML alone would read this as a string
    assert changed.model.family == "transformer" and cfg.model.dropout == 0.1  # the original is untouched


@pytest.mark.parametrize("item, message", [
    ("model.dropuot=0.3", "unknown key 'model.dropuot'; did you mean 'model.dropout'"),
    ("modl.dropout=0.3", "unknown section 'modl'"),
    ("model.dropout", "expected SECTION.KEY=VALUE"),
    ("model.dropout=2", "dropout"),
    ("model.heads=four", "'model.heads' must be int"),
])
def test_bad_override_is_named(tmp_path, item, message):
    cfg = load_config(write(tmp_path, "data: {recipe: reverse}\n"))
    with pytest.raises(AttendError, match=message):
        with_overrides(cfg, [item])


def test_learned_positions_past_the_training_limit_are_not_used():
    """Rows of a learned position table past data.max_len never received a gradient: inference stops there."""
    cfg = config_from_dict({"data": {"recipe": "reverse", "max_len": 40},
                            "model": {"positions": "learned", "max_positions": 64}})
    assert sequence_limit(cfg) == 40
    cfg.model.positions = "sinusoidal"  # a formula: defined at every position up to max_positions
    assert sequence_limit(cfg) == 64
