"""Pictures of attention from tiny trained models: traces, heatmaps, animation, alignment, command line."""

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from attend.checkpoint import load_model
from attend.cli import main
from attend.data.vocab import EOS_ID
from attend.errors import AttendError
from attend.explain import describe, explain, map_axes
from attend.explain.alignment import alignment
from attend.explain.animate import animate
from attend.explain.heatmap import plot_head_grid, plot_map
from attend.explain.trace import trace
from attend.inference import SearchOptions, Translator
from attend.search import greedy

TEXT = "a b c d e"


@pytest.fixture(scope="module")
def loaded(trained_folder):
    return load_model(trained_folder)


def test_trace_holds_every_map_with_documented_shapes(loaded):
    t = trace(loaded, TEXT)
    layers, heads = loaded.config.model.decoder_layers, loaded.config.model.heads
    S, T = len(t.src_tokens), len(t.tgt_tokens)
    assert t.src_tokens == TEXT.split() + ["</s>"] and t.tgt_tokens[-1] == "</s>"
    assert t.maps["cross"].shape == (layers, heads, T, S)
    assert t.maps["encoder"].shape == (loaded.config.model.encoder_layers, heads, S, S)
    assert t.maps["decoder"].shape == (layers, heads, T, T)
    for m in t.maps.values():
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)  # every row a distribution
    assert np.allclose(np.triu(t.maps["decoder"], 1), 0.0)  # the decoder never looks ahead
    assert t.output == Translator(loaded).best([TEXT])[0]


def test_greedy_trace_alternatives_rank_the_chosen_token_first(loaded):
    t = trace(loaded, TEXT, top_k=3)
    assert len(t.alternatives) == len(t.tgt_tokens)
    assert not t.forced_end
    for chosen, alternatives in zip(t.tgt_tokens, t.alternatives):
        assert alternatives[0][0] == chosen and not {"<pad>", "<s>"} & {token for token, _ in alternatives}
        probabilities = [p for _, p in alternatives]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6


def test_an_output_cut_at_its_length_limit_says_so(trained_folder):
    never_ends = load_model(trained_folder)
    with torch.no_grad():
        never_ends.model.out.bias[EOS_ID] = -1e4  # the model would never choose </s>: search has to
    t = trace(never_ends, TEXT)
    assert t.forced_end and t.tgt_tokens[-1] == "</s>" and "reached the length limit" in describe(t)


def test_teacher_forced_maps_equal_the_incremental_search_attention(loaded):
    """The pictures show what search saw: one full pass equals the cached step-by-step attention."""
    t = trace(loaded, TEXT)
    ids = Translator(loaded).encode_inputs([TEXT], "test")[0]
    src = torch.tensor([ids])
    hyp = greedy(loaded.model, src, src != 0, 20, return_attention=True)[0][0]
    stepwise = hyp.attention.permute(1, 2, 0, 3).numpy()  # (layers, heads, T, S)
    np.testing.assert_allclose(t.maps["cross"], stepwise, atol=1e-5)


def test_beam_trace_records_the_search_that_found_the_output(loaded):
    t = trace(loaded, TEXT, beam_size=3)
    assert t.beam_size == 3 and t.beam_steps
    assert all(len(step.beams) <= 3 for step in t.beam_steps)
    # the output's prefix is a live beam one step before it ends, and it ends with the traced score
    paths = [[]]
    for step in t.beam_steps[: len(t.tgt_tokens) - 1]:
        paths = [paths[b["parent"]] + [b["token"]] for b in step.beams]
    assert t.tgt_tokens[:-1] in paths
    ended = t.beam_steps[len(t.tgt_tokens) - 1].ended
    assert any(abs(e["score"] - t.score) < 1e-3 for e in ended)


def test_heatmap_labels_are_the_tokens_and_the_file_matches_the_figure(loaded, tmp_path):
    t = trace(loaded, TEXT)
    fig = plot_map(t.cross.mean(axis=(0, 1)), t.tgt_tokens, t.src_tokens, "test", tmp_path / "map.png")
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == t.src_tokens
    assert [label.get_text() for label in ax.get_yticklabels()] == t.tgt_tokens
    with Image.open(tmp_path / "map.png") as image:
        assert image.size == tuple(round(v * 110) for v in fig.get_size_inches())
    grid = plot_head_grid(t.maps["cross"], t.tgt_tokens, t.src_tokens, "grid", tmp_path / "grid.png")
    layers, heads = t.maps["cross"].shape[:2]
    maps, colour_bar = grid.axes[:-1], grid.axes[-1]
    assert len(maps) == layers * (heads + 1) and colour_bar.get_ylabel() == "attention weight"
    assert [label.get_text() for label in maps[-1].get_xticklabels()] == t.src_tokens
    assert {ax.images[0].get_clim() for ax in [ax] + maps} == {(0.0, 1.0)}  # one scale: heads can be compared


def test_each_map_is_labelled_by_what_its_two_sides_read(loaded):
    t = trace(loaded, "a zebra c")
    assert t.src_tokens == ["a", "zebra (<unk>)", "c", "</s>"]  # the word, and what the model saw instead
    rows, cols, _, col_name = map_axes(t)["decoder"]
    assert rows == t.tgt_tokens and cols == ["<s>"] + t.tgt_tokens[:-1] and col_name == "decoder input"
    np.testing.assert_allclose(t.maps["decoder"][..., 0, 0], 1.0, atol=1e-6)  # step 1 can only read <s>
    assert map_axes(t)["encoder"][:2] == (t.src_tokens, t.src_tokens)
    assert t.to_dict()["decoder_inputs"] == cols  # the page labels its columns the same way


def test_a_dollar_sign_is_drawn_as_text_not_as_a_formula(tmp_path):
    fig = plot_map(np.eye(2), ["$5", "x"], ["cost $_$", "y"], "step 20: 'cost $_$ a' -> '$5'", tmp_path / "d.png")
    assert fig.axes[0].get_title() == "step 20: 'cost $_$ a' -> '$5'" and (tmp_path / "d.png").stat().st_size > 0


def test_explain_decodes_as_translate_does(loaded, trained_folder, tmp_path):
    folder = tmp_path / "tuned"
    shutil.copytree(trained_folder, folder)
    (folder / "search.json").write_text('{"beam": 3, "alpha": 0.6}')
    tuned = load_model(folder)
    assert explain([tuned], TEXT, tmp_path / "a").traces[0].beam_size == 3  # the tuned search, as translate
    assert explain([tuned], TEXT, tmp_path / "b", beam_size=1).traces[0].beam_size == 1  # unless told otherwise
    assert explain([tuned], TEXT, tmp_path / "c").traces[0].output == Translator(tuned, SearchOptions(3, alpha=0.6)).best([TEXT])[0]


def test_a_failing_ffmpeg_costs_the_video_only(loaded, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho 'Unknown encoder libx264' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    warnings = []
    written = animate(trace(loaded, TEXT), tmp_path / "decoding.gif", warn=warnings.append)
    assert written == [tmp_path / "decoding.gif"] and not (tmp_path / "decoding.mp4").exists()
    assert "ffmpeg could not write the video (Unknown encoder libx264)" in warnings[0]


def test_sixty_token_heatmap_keeps_every_label(loaded, tmp_path):
    tokens = [f"w{i}" for i in range(60)]
    weights = np.random.default_rng(0).dirichlet(np.ones(60), size=60)
    fig = plot_map(weights, tokens, tokens, "60 tokens", tmp_path / "big.png")
    assert [label.get_text() for label in fig.axes[0].get_xticklabels()] == tokens
    assert fig.get_size_inches()[0] >= 60 * 0.25  # a quarter inch per token: 8-point labels do not overlap


def test_a_long_input_still_gets_its_head_grid(tmp_path):
    # 8 heads at 500 tokens passed matplotlib's 65,536-pixel limit before the panels were capped
    tokens = [f"w{i}" for i in range(500)]
    maps = np.random.default_rng(0).dirichlet(np.ones(500), size=(1, 8, 500))
    fig = plot_head_grid(maps, tokens, tokens, "500 tokens", tmp_path / "grid.png")
    assert fig.get_size_inches()[0] * 100 < 2 ** 16 and (tmp_path / "grid.png").stat().st_size > 0


def test_animation_has_one_frame_per_source_and_output_token(loaded, tmp_path):
    t = trace(loaded, TEXT, beam_size=2)
    written = animate(t, tmp_path / "decoding.gif", mp4=False)
    with Image.open(written[0]) as gif:
        assert gif.n_frames == len(t.src_tokens) + len(t.tgt_tokens)
        assert gif.size[0] > 300 and gif.size[1] > 200


def test_alignment_measures_monotonic_and_crossing_maps():
    diagonal = alignment(np.eye(5))
    assert diagonal.monotonic == 1.0 and diagonal.argmax == [0, 1, 2, 3, 4] and abs(diagonal.entropy) < 1e-9
    assert "mean entropy 0.00 nats" in diagonal.describe(list("abcde"), list("ABCDE"))  # never "-0.00"
    reverse = alignment(np.eye(5)[::-1])
    assert reverse.monotonic == 0.0 and reverse.argmax == [4, 3, 2, 1, 0]
    uniform = alignment(np.full((2, 3, 4, 4), 0.25))
    assert abs(uniform.entropy - np.log(4)) < 1e-9
    stuck = alignment(np.tile([0.1, 0.7, 0.2], (4, 1)))  # every output step looks at the same source token
    assert "every step on one source token, 'b' (not aligned yet)" in stuck.describe(list("abc"), list("WXYZ"))
    assert "100% monotonic" in diagonal.describe(list("abcde"), list("ABCDE"))
    one_word = alignment(np.array([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2]]))  # "a" and </s>, both on the first token
    assert "not aligned" not in one_word.describe(["a", "b", "</s>"], ["A", "</s>"])


def test_every_family_gets_pictures_from_one_code_path(loaded, rnn_folders, tmp_path):
    models = [loaded, load_model(rnn_folders["rnn-attention"]), load_model(rnn_folders["rnn"])]
    result = explain(models, TEXT, tmp_path, animate=True)
    names = {p.relative_to(tmp_path).as_posix() for p in result.files}
    assert {"reverse/cross_attention.png", "reverse/cross_attention_heads.png", "reverse/encoder_self_attention.png",
            "reverse/decoder_self_attention.png", "rnn-attention/cross_attention.png", "compare.png"} <= names
    assert {f"{name}/decoding.gif" for name in ("reverse", "rnn-attention", "rnn")} <= names
    assert not any(n.startswith("rnn/") and n.endswith(".png") for n in names)  # no attention, no heatmap
    assert "no attention" in result.notes[2] and "monotonic" in result.notes[1]
    rnn_map = result.traces[1].cross
    assert rnn_map.shape[:2] == (1, 1)


def test_explain_command_writes_the_pictures(trained_folder, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["explain", "--model", str(trained_folder), TEXT, "--out", str(out), "--beam", "2"]) == 0
    printed = capsys.readouterr().out
    assert "alignment:" in printed and str(out / "cross_attention.png") in printed
    assert (out / "cross_attention_heads.png").stat().st_size > 5000


def test_explain_replaces_an_earlier_explain_and_nothing_else(loaded, tmp_path):
    (tmp_path / "decoding.mp4").write_text("the user's own video, named as explain names its own")
    explain([loaded], "a b", tmp_path, html=True)
    assert (tmp_path / "explain.html").exists()
    explain([loaded], TEXT, tmp_path)  # another input, no --html this time
    assert not (tmp_path / "explain.html").exists()  # the earlier input's page is gone
    assert (tmp_path / "decoding.mp4").read_text().startswith("the user's own")  # explain did not write it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "cross_attention.png").write_text("the user's own picture, where explain would draw one")
    with pytest.raises(AttendError, match="cross_attention.png: exists, and no earlier explain wrote it"):
        explain([loaded], TEXT, mine, animate=True)
    assert [p.name for p in mine.iterdir()] == ["cross_attention.png"]  # nothing written, nothing left aside
    assert (mine / "cross_attention.png").read_text().startswith("the user's own")


def test_an_out_folder_that_cannot_be_made_is_one_line(trained_folder, tmp_path, capsys):
    (tmp_path / "file").write_text("kept")
    assert main(["explain", "--model", str(trained_folder), "a", "--out", str(tmp_path / "file" / "sub")]) == 1
    assert "cannot create the pictures' folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "kept"


@pytest.mark.parametrize("argv, message", [
    (["explain", "--model", "{model}", "   "], "non-empty input"),
    (["explain", "--model", "{model}", "a", "--beam", "0"], "--beam"),
    (["explain", "--model", "{missing}", "a"], "model folder not found"),
])
def test_explain_errors_are_one_line(trained_folder, tmp_path, capsys, argv, message):
    argv = [a.format(model=trained_folder, missing=tmp_path / "nope") for a in argv]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_explain_into_a_file_is_refused(trained_folder, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["explain", "--model", str(trained_folder), "a b", "--out", str(tmp_path / "notes.txt")]) == 1
    assert "notes.txt: is a file; --out takes the folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_training_draws_curves_attention_snapshots_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from conftest import tiny_config
    from attend.train import train

    folder = tmp_path / "run"
    train(tiny_config("rnn-attention", train={"max_steps": 40, "eval_every": 20, "tensorboard": True}), folder,
          progress=False)
    with Image.open(folder / "curves.png") as curves:
        assert curves.size == (1000, 360)
    snapshots = sorted(p.name for p in (folder / "pictures").iterdir())
    assert snapshots == ["attention-step-000020.png", "attention-step-000040.png"]
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("valid/accuracy")] == [20, 40]
    assert len(events.Scalars("train/loss")) == 4  # every log_every = 10 steps


def test_pictures_can_be_switched_off(tmp_path):
    from conftest import tiny_config
    from attend.train import train

    folder = tmp_path / "run"
    train(tiny_config("rnn-attention", train={"max_steps": 20, "eval_every": 20, "pictures": False}), folder,
          progress=False)
    assert not (folder / "curves.png").exists() and not (folder / "pictures").exists()


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed (.ci/run installs it)")
def test_animation_is_also_an_mp4_where_ffmpeg_is(loaded, tmp_path):
    t = trace(loaded, TEXT)
    gif, mp4 = animate(t, tmp_path / "decoding.gif")
    data = mp4.read_bytes()
    assert mp4.suffix == ".mp4" and data[4:8] == b"ftyp" and len(data) > 2000
