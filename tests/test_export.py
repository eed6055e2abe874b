"""CTranslate2 export: the same outputs as attend's own search, int8, the command line, and refusals."""

import shutil
import sys

import pytest

pytest.importorskip("ctranslate2")

from conftest import stdin_of, tiny_config

from attend.checkpoint import load_model
from attend.cli import main
from attend.errors import AttendError
from attend.export import CTranslate2Translator, export_ctranslate2
from attend.inference import SearchOptions, Translator
from attend.recipes.synthetic import make_pairs

INPUTS = [src for src, _ in make_pairs("reverse", 50, vocab=8, max_len=6, seed=7)]
INPUTS += ["a </s> b c", "<pad> d e", "f <s> g"]  # text that spells a special token is <unk> to both engines
SCORE_TOLERANCE = 0.05  # CT2 renormalises after removing <pad>/<s>, attend does not: scores differ a little


@pytest.fixture(scope="module")
def post_norm_folder(tmp_path_factory):
    """Post-norm, learned positions, untied output projection: every switch the other way from trained_folder."""
    from attend.train import train

    folder = tmp_path_factory.mktemp("models") / "post"
    config = tiny_config(model={"norm": "post", "positions": "learned", "tie_embeddings": False},
                         train={"max_steps": 300, "eval_every": 300})
    train(config, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def exports(trained_folder, post_norm_folder, tmp_path_factory):
    """name -> (attend model, its float32 CTranslate2 folder)."""
    root = tmp_path_factory.mktemp("exports")
    found = {}
    for name, folder in (("pre-sinusoidal-tied", trained_folder), ("post-learned-untied", post_norm_folder)):
        loaded = load_model(folder)
        found[name] = loaded, export_ctranslate2(loaded, root / name)
    return found


def both(loaded, exported, options: SearchOptions, **ct2):
    attend = Translator(loaded, options, device="cpu").translate(INPUTS)
    ct2_out = CTranslate2Translator(exported, SearchOptions(**vars(options)), device="cpu", threads=1, **ct2).translate(INPUTS)
    return attend, ct2_out


@pytest.mark.parametrize("name", ["pre-sinusoidal-tied", "post-learned-untied"])
def test_greedy_outputs_are_identical(exports, name):
    loaded, exported = exports[name]
    assert {p.name for p in exported.iterdir()} >= {"model.bin", "config.json", "config.yaml", "tokenizers.json", "export.json"}
    attend, ct2 = both(loaded, exported, SearchOptions(beam_size=1))
    assert [a[0].text for a in attend] == [c[0].text for c in ct2]
    for a, c in zip(attend, ct2):
        if len(a[0].tokens) < 13:  # below the length limit; there attend also scores the forced </s>, CT2 does not
            assert c[0].score == pytest.approx(a[0].score, abs=SCORE_TOLERANCE)


@pytest.mark.parametrize("name", ["pre-sinusoidal-tied", "post-learned-untied"])
def test_beam_best_outputs_agree_and_nbest_scores_are_close(exports, name):
    loaded, exported = exports[name]
    attend, ct2 = both(loaded, exported, SearchOptions(beam_size=3, nbest=3))
    same_best = 0
    for a, c in zip(attend, ct2):
        assert len(c) == 3 and [o.score for o in c] == sorted((o.score for o in c), reverse=True)
        below_limit = all(len(o.tokens) < 13 for o in a)  # at the limit attend also scores the forced </s>
        if a[0].text == c[0].text:
            same_best += 1
            if below_limit:
                assert c[0].score == pytest.approx(a[0].score, abs=SCORE_TOLERANCE)
        if [o.text for o in a] == [o.text for o in c] and below_limit:
            assert [o.score for o in c] == pytest.approx([o.score for o in a], abs=SCORE_TOLERANCE)
    # at alpha 0 both engines search until no live beam can beat the best finished hypothesis
    assert same_best == len(INPUTS)


def test_int8_export_mostly_agrees(exports, tmp_path):
    loaded, exported = exports["post-learned-untied"]
    int8 = export_ctranslate2(loaded, tmp_path / "int8", quantization="int8")
    assert (int8 / "model.bin").stat().st_size < 0.5 * (exported / "model.bin").stat().st_size
    attend = Translator(loaded, device="cpu").best(INPUTS)
    for folder, compute_type in ((int8, "default"), (exported, "int8")):  # int8 weights, or quantized on load
        outputs = CTranslate2Translator(folder, device="cpu", compute_type=compute_type, threads=1).best(INPUTS)
        agreement = sum(a == c for a, c in zip(attend, outputs)) / len(INPUTS)
        print(f"int8 ({compute_type}) agrees with attend float32 on {agreement:.0%} of {len(INPUTS)} inputs")
        assert agreement >= 0.8


def test_order_empty_lines_sampling_and_long_inputs(exports):
    _, exported = exports["pre-sinusoidal-tied"]
    translator = CTranslate2Translator(exported, device="cpu", threads=1, batch_size=2)
    lines = ["a b c", "", "d", "h g f e d c b a", ""]
    outs = translator.translate(lines)
    assert len(outs) == 5 and outs[1][0].text == outs[4][0].text == "" and outs[0][0].text
    assert [o[0].text for o in translator.translate_stream(iter(lines), chunk_lines=2)] == [o[0].text for o in outs]
    sampled = CTranslate2Translator(exported, SearchOptions(sample=True, top_k=3, seed=1), device="cpu", threads=1)
    assert len(sampled.best(lines)) == 5
    with pytest.raises(AttendError, match="input:2: input has 70 tokens"):
        translator.translate(["a", " ".join("a" * 70)])


def test_the_tuned_beam_travels_with_the_export_and_samples_come_n_at_a_time(trained_folder, tmp_path, capsys):
    tuned = tmp_path / "tuned"
    shutil.copytree(trained_folder, tuned)
    (tuned / "search.json").write_text('{"beam": 3, "alpha": 0.6}')
    assert main(["export", "--model", str(tuned), "--out", str(tmp_path / "ct2")]) == 0
    capsys.readouterr()
    inputs = INPUTS[:10]
    assert main(["translate", "--engine", "ctranslate2", "--model", str(tmp_path / "ct2"), *inputs]) == 0
    out, err = capsys.readouterr()
    assert "CTranslate2's is another formula, so it decodes with alpha 0" in err
    assert main(["translate", "--model", str(tuned), "--beam", "3", "--alpha", "0", *inputs]) == 0
    assert capsys.readouterr().out == out  # beam 3 from search.json, alpha 0: attend's own beam 3 output
    assert main(["translate", "--engine", "ctranslate2", "--model", str(tmp_path / "ct2"), "--sample",
                 "--nbest", "3", "--temperature", "2", "a b c", "d e"]) == 0
    assert [row.split("\t")[0] for row in capsys.readouterr().out.splitlines()] == ["0", "0", "0", "1", "1", "1"]


def test_cli_export_then_translate(trained_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ct2"
    assert main(["export", "--model", str(trained_folder), "--format", "ctranslate2", "--out", str(out)]) == 0
    assert "attend translate --engine ctranslate2" in capsys.readouterr().out
    inputs = INPUTS[:10]
    assert main(["translate", "--model", str(trained_folder), *inputs]) == 0
    expected = capsys.readouterr().out
    assert main(["translate", "--engine", "ctranslate2", "--model", str(out), *inputs]) == 0
    assert capsys.readouterr().out == expected
    monkeypatch.setattr(sys, "stdin", stdin_of("\n".join(inputs).encode() + b"\n"))
    assert main(["translate", "--engine", "ctranslate2", "--model", str(out), "--output", str(tmp_path / "o.txt")]) == 0
    assert (tmp_path / "o.txt").read_text() == expected
    assert main(["translate", "--engine", "ctranslate2", "--model", str(out), "--beam", "3", "--nbest", "2", "a b"]) == 0
    assert [row.split("\t")[0] for row in capsys.readouterr().out.splitlines()] == ["0", "0"]
    q8 = tmp_path / "q8"
    assert main(["export", "--model", str(trained_folder), "--out", str(q8), "--quantization", "int8"]) == 0
    assert main(["translate", "--engine", "ctranslate2", "--model", str(q8), "a b c"]) == 0


def test_rnn_is_refused_with_a_reason(rnn_folders, tmp_path, capsys):
    out = tmp_path / "ct2"
    code = main(["export", "--model", str(rnn_folders["rnn-attention"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "CTranslate2 runs Transformers" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_and_bad_quantization(exports, tmp_path):
    loaded, _ = exports["pre-sinusoidal-tied"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(AttendError, match="not empty"):
        export_ctranslate2(loaded, tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    export_ctranslate2(loaded, tmp_path / "empty")  # an empty folder is fine
    with pytest.raises(AttendError, match="not empty"):
        export_ctranslate2(loaded, tmp_path / "empty")
    with pytest.raises(AttendError, match="unknown quantization 'int4'"):
        export_ctranslate2(loaded, tmp_path / "q", quantization="int4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]  # no staging folders left


def test_translator_needs_an_exported_folder(trained_folder, tmp_path):
    with pytest.raises(AttendError, match="an attend model folder.*attend export"):
        CTranslate2Translator(trained_folder)
    with pytest.raises(AttendError, match="folder not found"):
        CTranslate2Translator(tmp_path / "none")


def test_export_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0 and "usage: attend export" in capsys.readouterr().out
