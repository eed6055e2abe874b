"""Translation on a slice of Multi30k: subwords trained and saved, detokenized output, honest BLEU,
checkpoint averaging, length-penalty tuning and streaming translation of files."""

import gzip
import json
from pathlib import Path

import pytest
import sacrebleu
import torch

from attend.average import average_checkpoints
from attend.checkpoint import load_model
from attend.cli import main
from attend.config import config_from_dict, load_config
from attend.errors import AttendError
from attend.evaluate import bleu_chrf
from attend.inference import Translator
from attend.tuning import best_alpha

MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "multi30k-en-de-transformer.yaml"
needs_multi30k = pytest.mark.skipif(not MULTI30K.is_dir(), reason=f"{MULTI30K} is not here")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The first 400 training and 60 validation/test lines of Multi30k en-de, gzipped like the original."""
    folder = tmp_path_factory.mktemp("multi30k")
    for split, count in (("train", 400), ("val", 60), ("test_2016_flickr", 60)):
        for lang in ("en", "de"):
            lines = gzip.decompress((MULTI30K / f"{split}.{lang}.gz").read_bytes()).splitlines(keepends=True)
            (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(b"".join(lines[:count])))
    return folder


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """The shipped en-de Transformer config, shrunk to train for a few seconds."""
    text = CONFIG.read_text(encoding="utf-8")
    for old, new in (("hidden_size: 256", "hidden_size: 64"), ("ff_size: 1024", "ff_size: 128"),
                     ("subword_vocab_size: 8000", "subword_vocab_size: 600"), ("max_minutes: 120", "max_steps: 30"),
                     ("eval_every: 1000", "eval_every: 10"), ("batch_tokens: 4096", "batch_tokens: 1500"),
                     ("warmup_steps: 800", "warmup_steps: 10"),
                     # fp32 on every processor: bf16 rounding can make a 30-step model end every sentence at once
                     ("clip_norm: 1.0", "clip_norm: 1.0\n  precision: fp32")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("config") / "multi30k-tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_folder(corpus, small_config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "en-de"
    assert main(["train", str(small_config), "--data-dir", str(corpus), "--out", str(folder), "--quiet"]) == 0
    return folder


@needs_multi30k
def test_joint_subword_model_is_saved_and_reloads_identically(model_folder, corpus):
    loaded = load_model(model_folder)
    assert (model_folder / "src.spm").read_bytes() == (model_folder / "tgt.spm").read_bytes()
    assert loaded.src_vocab.itos == loaded.tgt_vocab.itos  # one joint vocabulary
    sentence = "Zwei junge Männer spielen Fußball."
    pieces = loaded.src_tokenizer.encode(sentence)
    assert len(pieces) > len(sentence.split()) and loaded.tgt_tokenizer.decode(pieces) == sentence
    assert load_config(model_folder / "config.yaml").data.data_dir == str(corpus)


@needs_multi30k
def test_translate_returns_detokenized_text(model_folder, capsys):
    assert main(["translate", "-m", str(model_folder), "A man rides a bike.", "Two dogs run."]) == 0
    lines = capsys.readouterr().out.splitlines()
    # a 30-step model may end a sentence at once: its first tokens are near-ties that rounding can flip
    assert len(lines) == 2 and any(line.strip() for line in lines)
    assert not any("\u2581" in line for line in lines)  # no sentencepiece markers leak out


def test_bleu_is_sacrebleus_own_number_on_detokenized_text():
    hyps = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee!", "Eine Frau liest."]
    refs = ["Ein Mann fährt ein Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch."]
    result = bleu_chrf(hyps, [[r] for r in refs])
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert result["length_ratio"] == pytest.approx(15 / 18)  # 13a tokens (punctuation split off): 15 vs 18


@needs_multi30k
def test_evaluate_prints_bleu_chrf_length_ratio_and_signatures(model_folder, corpus, capsys):
    assert main(["evaluate", "-m", str(model_folder), "--src", str(corpus / "test_2016_flickr.en.gz"),
                 "--ref", str(corpus / "test_2016_flickr.de.gz"), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("BLEU", "chrF", "length ratio", "bleu: nrefs:1|case:mixed", "chrf: nrefs:1"):
        assert name in out
    assert "WER" not in out  # word error rates of sentences mean nothing for translation


@needs_multi30k
def test_average_is_the_mean_of_the_last_checkpoints(model_folder, tmp_path):
    out, chosen = average_checkpoints(model_folder, tmp_path / "avg", last=2)
    assert [c.name for c in chosen] == ["step-00000020", "step-00000030"]
    averaged = load_model(out).model.state_dict()
    a, b = (load_model(model_folder, weights_from=c).model.state_dict() for c in chosen)
    for name in ("out.bias", "encoder.0.ff.0.weight"):
        torch.testing.assert_close(averaged[name], (a[name] + b[name]) / 2)
    with pytest.raises(AttendError, match="already exists"):
        average_checkpoints(model_folder, out, last=2)


def test_best_alpha_follows_the_metric_direction():
    results = [(0.0, {"bleu": 20.0, "wer": 30.0}), (0.6, {"bleu": 22.0, "wer": 31.0}), (1.0, {"bleu": 22.0, "wer": 29.0})]
    assert best_alpha(results, "bleu") == (0.6, 22.0)  # ties go to the smaller alpha
    assert best_alpha(results, "wer") == (1.0, 29.0)
    unseen = [(0.0, {"bleu": 0.0012}), (1.0, {"bleu": 0.0031})]  # both print as 0.00
    assert best_alpha(unseen, "bleu")[0] == 0.0


@needs_multi30k
def test_tune_saves_the_best_alpha_and_translate_uses_it(model_folder, corpus, tmp_path, capsys):
    folder = tmp_path / "tuned"
    average_checkpoints(model_folder, folder, last=1)
    capsys.readouterr()
    assert main(["tune", "-m", str(folder), "--src", str(corpus / "val.en.gz"), "--ref", str(corpus / "val.de.gz"),
                 "--beam", "3", "--alphas", "0", "1.0", "2.0", "--quiet"]) == 0
    table = dict(tuple(map(float, row.split())) for row in capsys.readouterr().out.splitlines()[1:4])  # alpha: BLEU
    saved = json.loads((folder / "search.json").read_text())
    assert saved["beam"] == 3 and saved["tuned_on"].endswith("val.en.gz")
    assert saved["score"] == pytest.approx(max(table.values()), abs=0.01) and table[saved["alpha"]] == max(table.values())
    assert main(["translate", "-m", str(folder), "A dog runs.", "--nbest", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # beam 3 by default now: three hypotheses
    assert main(["tune", "-m", str(folder), "--src", str(corpus / "val.en.gz"), "--ref", str(corpus / "val.de.gz"),
                 "--beam", "2", "--alphas", "0", "--metric", "wer", "--quiet"]) == 0
    wer = float(capsys.readouterr().out.splitlines()[1].split()[1])
    saved = json.loads((folder / "search.json").read_text())
    assert saved["metric"] == "wer" and saved["score"] == pytest.approx(wer, abs=0.01)  # another score than BLEU


@needs_multi30k
def test_streamed_file_translation_equals_in_memory(model_folder, corpus, tmp_path):
    loaded = load_model(model_folder)
    lines = gzip.decompress((corpus / "val.en.gz").read_bytes()).decode().splitlines()
    translator = Translator(loaded)
    streamed = [outs[0].text for outs in translator.translate_stream(iter(lines), chunk_lines=7)]
    assert streamed == translator.best(lines)
    out = tmp_path / "out.de"
    assert main(["translate", "-m", str(model_folder), "--input", str(corpus / "val.en.gz"), "-o", str(out)]) == 0
    assert out.read_text().splitlines() == streamed


@needs_multi30k
def test_bad_line_in_a_streamed_file_is_named_and_output_untouched(model_folder, tmp_path, capsys):
    src = tmp_path / "in.en"
    src.write_bytes(b"A dog.\nA cat.\nbad \xff byte\n")
    out = tmp_path / "out.de"
    out.write_text("keep me\n")
    assert main(["translate", "-m", str(model_folder), "--input", str(src), "-o", str(out)]) == 1
    assert f"{src}:3: invalid UTF-8" in capsys.readouterr().err
    assert out.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()].count("out.de") == 1
    assert not any(p.name.startswith(".out.de") for p in tmp_path.iterdir())


def test_data_dir_and_joint_subwords_are_checked(tmp_path):
    raw = {"data": {"train_src": "a", "train_tgt": "b", "valid_src": "c", "valid_tgt": "d",
                    "src_tokenizer": "subword", "tgt_tokenizer": "word", "joint_subwords": True}}
    with pytest.raises(AttendError, match="joint_subwords needs"):
        config_from_dict(raw)
    assert main(["train", str(CONFIG), "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 1
    assert not (tmp_path / "r").exists()
