import pytest
import sacrebleu

from attend.evaluate import accuracy, bleu_chrf, score, wer_per


def test_wer_per_use_the_closest_reference():
    hyps = ["K AE T", "D AO G", "F IH SH"]
    refs = [["K AE T"], ["D AA G", "D AO G"], ["F IH SH IH", "P IH SH"]]
    result = wer_per(hyps, refs)
    assert result["wer"] == pytest.approx(100 / 3)  # only the third word is wrong
    # distances 0, 0, 1 (closest reference, length 3): 1 / (3 + 3 + 3)
    assert result["per"] == pytest.approx(100 / 9)


def test_accuracy_ignores_spacing():
    assert accuracy(["a  b", "c"], [["a b"], ["d"]]) == 50.0


def test_bleu_equals_sacrebleu_on_detokenized_text():
    hyps = ["The cat sat on the mat.", "A dog runs in the park!"]
    refs = ["The cat sat on a mat.", "A dog is running in the park!"]
    ours = bleu_chrf(hyps, [[r] for r in refs])
    assert ours["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert ours["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert "nrefs:1" in ours["bleu_signature"]


def test_a_loss_driven_task_is_scored_by_every_metric():
    # the loss says nothing about the kind of task, so neither family of scores is left out
    hyps, refs = ["a dog runs", "K AE T"], [["a dog runs"], ["K AE D"]]
    assert set(score("loss", hyps, refs)) >= {"bleu", "chrf", "accuracy", "wer", "per"}
    assert score("loss", hyps, refs)["wer"] == 50.0
    assert "wer" not in score("bleu", hyps, refs) and "bleu" not in score("per", hyps, refs)


def test_per_divides_by_the_length_of_the_closest_reference():
    assert wer_per(["K AE"], [["K AE T"]])["per"] == pytest.approx(100 / 3)  # one deletion in three phonemes


def test_bleu_counts_every_reference():
    hyps = ["the cat sat on the mat", "a dog runs in the park"]
    refs = [["the cat sat on a mat", "the cat sat on the mat"], ["a dog is running in the park", "a dog runs in the park"]]
    expected = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs], [r[1] for r in refs]]).score
    assert bleu_chrf(hyps, refs)["bleu"] == pytest.approx(expected) == pytest.approx(100.0)


def test_a_reference_written_decomposed_matches_the_composed_output():
    decomposed = "Zwei Ma\u0308nner gehen heute nach Hause ."  # "a" + combining diaeresis
    result = score("bleu", ["Zwei M\u00e4nner gehen heute nach Hause ."], [[decomposed]])
    assert result["bleu"] == pytest.approx(100.0) and result["chrf"] == pytest.approx(100.0)
    assert score("wer", ["M\u00e4nner"], [["Ma\u0308nner"]])["wer"] == 0.0
