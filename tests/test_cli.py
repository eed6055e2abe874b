"""The command line as a user meets it: outputs, formats, help, and one-line errors with non-zero exits."""

import gzip
import io
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import stdin_of

from attend.cli import main
from attend.errors import AttendError


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", stdin_of(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_arguments_file_and_stdin_agree(trained_folder, tmp_path, capsys, monkeypatch):
    m = str(trained_folder)
    code, from_args, _ = run(capsys, "translate", "--model", m, "a b c", "d e")
    assert code == 0 and len(from_args.splitlines()) == 2
    (tmp_path / "in.txt").write_text("a b c\nd e\n")
    _, from_file, _ = run(capsys, "translate", "--model", m, "--input", str(tmp_path / "in.txt"))
    _, from_stdin, _ = run(capsys, "translate", "--model", m, stdin=b"a b c\nd e\n", monkeypatch=monkeypatch)
    assert from_args == from_file == from_stdin
    for name in ("out.txt", "out.de.gz"):  # a .gz name gets gzip, as --input reads it
        assert run(capsys, "translate", "--model", m, "--input", str(tmp_path / "in.txt"), "-o", str(tmp_path / name))[0] == 0
    assert (tmp_path / "out.txt").read_text() == gzip.decompress((tmp_path / "out.de.gz").read_bytes()).decode() == from_args


def test_no_input_at_all_is_one_line(trained_folder, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # as Python starts with standard input closed
    code, out, err = run(capsys, "translate", "--model", str(trained_folder))
    assert code == 1 and out == "" and "no input: give TEXT arguments, --input FILE" in err


def test_piped_lines_are_answered_as_they_come(trained_folder):
    # someone typing, or a program that writes a line and waits for its answer, is not kept until the end
    process = subprocess.Popen([sys.executable, "-m", "attend", "translate", "--model", str(trained_folder)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        answers = []
        for line in (b"a b c\n", b"d e\n"):
            process.stdin.write(line)
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 60)  # the input is still open: no end to wait for
            assert ready, "no answer within 60 s while the input stayed open"
            answers.append(process.stdout.readline())
        process.stdin.close()
        assert process.wait(timeout=60) == 0 and process.stdout.read() == b""
    finally:
        process.kill()
    batched = subprocess.run([sys.executable, "-m", "attend", "translate", "--model", str(trained_folder)],
                             input=b"a b c\nd e\n", capture_output=True).stdout
    assert b"".join(answers) == batched


def test_a_stdin_with_no_file_behind_it_still_reads(trained_folder, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfa b c\nd e\n")))  # as in a notebook
    code, out, _ = run(capsys, "translate", "--model", str(trained_folder))
    assert code == 0 and out == run(capsys, "translate", "--model", str(trained_folder), "a b c", "d e")[1]


def test_tune_counts_empty_outputs_for_its_warning(trained_folder):
    import torch

    from attend.checkpoint import load_model
    from attend.data.vocab import EOS_ID
    from attend.tuning import tune_alpha

    silent = load_model(trained_folder)
    with torch.no_grad():
        silent.model.out.bias[EOS_ID] = 1e4  # ends every output at once
    results = tune_alpha(silent, ["a b", "c d e"], [["b a"], ["e d c"]], 2, [0.0, 1.0])
    assert [scores["empty_outputs"] for _, scores in results] == [2, 2]


def test_stream_lines_reads_a_last_line_without_newline_and_strips_a_bom(tmp_path):
    from attend.data.corpus import StreamLines

    (tmp_path / "in.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\n\nthree")
    with open(tmp_path / "in.txt", "rb") as f:
        lines = StreamLines(f.fileno())
        assert list(lines) == ["one", "two", "", "three"] and lines.waiting()


def test_empty_lines_stay_in_place(trained_folder, capsys, monkeypatch):
    _, out, _ = run(capsys, "translate", "--model", str(trained_folder), stdin=b"a b\n\nc d\n", monkeypatch=monkeypatch)
    assert out.split("\n")[1] == "" and len(out.splitlines()) == 3


def test_inputs_with_unseen_tokens_get_one_note_naming_the_first(trained_folder, capsys, monkeypatch):
    _, out, err = run(capsys, "translate", "--model", str(trained_folder), stdin=b"a b\nzz a\nc d\nb qq\n",
                      monkeypatch=monkeypatch)
    assert len(out.splitlines()) == 4
    assert "note: 2 input lines held words the model never saw" in err and "(the first at stdin:2)" in err
    _, _, err = run(capsys, "translate", "--model", str(trained_folder), "a b", "c d")
    assert "note" not in err


def test_nbest_prints_index_score_text(trained_folder, capsys):
    code, out, _ = run(capsys, "translate", "--model", str(trained_folder), "--beam", "4", "--nbest", "3", "a b c",
                       "", "d")
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and [r[0] for r in rows] == ["0", "0", "0", "1", "1", "1", "2", "2", "2"]  # n rows per input
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)
    assert [r[2] for r in rows[3:6]] == ["", "", ""]  # the empty input's


def test_output_file_and_batch_size(trained_folder, tmp_path, capsys):
    out_file = tmp_path / "out.txt"
    code, out, _ = run(capsys, "translate", "--model", str(trained_folder), "--batch-size", "1", "-o", str(out_file), "a b", "c")
    assert code == 0 and out == "" and len(out_file.read_text().splitlines()) == 2


def test_output_that_is_a_folder_is_refused_before_decoding(trained_folder, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a b\n")
    code, out, err = run(capsys, "translate", "--model", str(trained_folder), "--input", str(tmp_path / "in.txt"),
                         "-o", str(tmp_path))
    assert code != 0 and out == "" and f"{tmp_path}: is a folder; --output takes the name of a file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_a_seeded_sample_of_a_line_does_not_depend_on_the_batch(trained_folder, capsys):
    words = ["a b c", "d e f g a", "h a", "c c d e"]
    sample = ["translate", "-m", str(trained_folder), "--sample", "--temperature", "3", "--seed", "4"]
    _, together, _ = run(capsys, *sample, *words)
    _, one_by_one, _ = run(capsys, *sample, "--batch-size", "1", *words)
    _, first_alone, _ = run(capsys, *sample, words[0])
    assert together == one_by_one and first_alone.splitlines()[0] == together.splitlines()[0]
    _, three, _ = run(capsys, *sample, "--nbest", "3", *words)
    rows = [row.split("\t") for row in three.splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [r[2] for r in rows[::3]] == together.splitlines()  # the first draw is the plain sample
    assert len({r[2] for r in rows}) > len(words)  # at temperature 3 the draws differ


def test_evaluate_prints_metrics_table(trained_folder, tmp_path, capsys):
    (tmp_path / "src").write_text("a b c\nd e f\n")
    (tmp_path / "ref").write_text("c b a\nf e d\n")
    code, out, _ = run(capsys, "evaluate", "--model", str(trained_folder), "--src", str(tmp_path / "src"),
                       "--ref", str(tmp_path / "ref"), "--quiet")
    assert code == 0
    assert "inputs" in out and "WER %" in out and "PER %" in out and "exact match %" in out


def test_evaluate_names_its_search_and_warns_when_it_was_tuned_on_the_scored_file(trained_folder, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained_folder, model)
    (tmp_path / "val").write_text("a b c\nd e f\n")
    (tmp_path / "val.ref").write_text("c b a\nf e d\n")
    (tmp_path / "test").write_text("b c d\n")
    (tmp_path / "test.ref").write_text("d c b\n")
    assert run(capsys, "tune", "-m", str(model), "--src", str(tmp_path / "val"), "--ref", str(tmp_path / "val.ref"),
               "--beam", "3", "--alphas", "0.6", "--quiet")[0] == 0
    _, _, err = run(capsys, "evaluate", "-m", str(model), "--src", str(tmp_path / "test"), "--ref",
                    str(tmp_path / "test.ref"), "--quiet")
    assert err.startswith("decoding: beam 3, alpha 0.6 (beam and alpha from search.json, tuned on ") and "warning" not in err
    _, _, err = run(capsys, "evaluate", "-m", str(model), "--src", str(tmp_path / "val"), "--ref",
                    str(tmp_path / "val.ref"), "--quiet")
    assert "warning: search.json was tuned on this same file" in err
    _, _, err = run(capsys, "evaluate", "-m", str(model), "--src", str(tmp_path / "val"), "--ref",
                    str(tmp_path / "val.ref"), "--beam", "1", "--quiet")
    assert err.strip() == "decoding: greedy"  # search.json gave nothing, so no warning about it
    _, out, _ = run(capsys, "info", "-m", str(model))
    assert "search         beam 3, alpha 0.6 (search.json, tuned on " in out


def test_evaluate_lexicon(trained_folder, tmp_path, capsys):
    (tmp_path / "lex").write_text("A  A\nA  B\nB  B\n")
    code, out, _ = run(capsys, "evaluate", "--model", str(trained_folder), "--lexicon", str(tmp_path / "lex"), "--quiet")
    assert code == 0 and out.splitlines()[0].split() == ["inputs", "2"]


def test_info(trained_folder, capsys):
    code, out, _ = run(capsys, "info", "--model", str(trained_folder))
    assert code == 0 and "transformer" in out and "parameters" in out and "step 150" in out


def test_too_long_input_names_the_line(trained_folder, capsys, monkeypatch):
    long_line = ("a " * 100).encode()
    code, out, err = run(capsys, "translate", "--model", str(trained_folder), stdin=b"a b\n" + long_line + b"\n",
                         monkeypatch=monkeypatch)
    assert code == 1 and out == ""
    assert err.startswith("attend: error: stdin:2: input has 100 tokens, more than this model takes (63)")
    code, out, err = run(capsys, "translate", "--model", str(trained_folder), "--truncate",
                         stdin=b"a b\n" + long_line + b"\n", monkeypatch=monkeypatch)
    assert code == 0 and "stdin:2: input has 100 tokens, cut to the first 63" in err
    _, fitting, _ = run(capsys, "translate", "--model", str(trained_folder), "a b", "a " * 63)
    assert out == fitting  # the long line decoded as its first 63 tokens


def test_invalid_utf8_input(trained_folder, capsys, monkeypatch):
    code, _, err = run(capsys, "translate", "--model", str(trained_folder), stdin=b"ok\n\xfe\xff\n", monkeypatch=monkeypatch)
    assert code == 1 and "stdin:2: invalid UTF-8" in err


def test_mismatched_evaluate_files(trained_folder, tmp_path, capsys):
    (tmp_path / "src").write_text("a\nb\n")
    (tmp_path / "ref").write_text("a\n")
    code, _, err = run(capsys, "evaluate", "-m", str(trained_folder), "--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref"))
    assert code == 1 and "has 2 lines but" in err


def test_train_with_bad_config_key(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("data: {recipe: reverse}\ntrain: {learning_rate: 0.1}\n")
    code, _, err = run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m"))
    assert code == 1 and err.count("\n") == 1 and "unknown key 'train.learning_rate'" in err
    assert not (tmp_path / "m").exists()


def test_train_set_overrides_the_config_and_a_bad_one_is_named(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("data: {recipe: reverse}\n")
    code, _, err = run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m"),
                       "--set", "model.dropuot=0.3")
    assert code == 1 and err.count("\n") == 1 and "did you mean 'model.dropout'" in err
    assert not (tmp_path / "m").exists()


def test_train_and_resume_from_the_command_line(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(
        "data: {recipe: copy, synthetic_size: 200}\n"
        "model: {family: rnn-attention, hidden_size: 32, embed_dim: 16, encoder_layers: 1, decoder_layers: 1}\n"
        "train: {max_steps: 12, eval_every: 3, batch_tokens: 400}\n")
    code, out, _ = run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m"), "--quiet",
                       "--set", "train.max_steps=6")
    assert code == 0 and "stopped at step 6" in out
    code, out, _ = run(capsys, "train", "--resume", str(tmp_path / "m"), "--max-steps", "9", "--quiet")
    assert code == 0 and "stopped at step 9" in out
    # a new run takes the budgets too, and --resume refuses what it would ignore
    code, out, _ = run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m2"), "--quiet",
                       "--max-steps", "3")
    assert code == 0 and "stopped at step 3" in out
    code, out, err = run(capsys, "train", "--resume", str(tmp_path / "m"), "--out", str(tmp_path / "m3"))
    assert code == 1 and "leave out CONFIG, --out, --data-dir and --set" in err and not (tmp_path / "m3").exists()
    code, out, err = run(capsys, "train", "--resume", str(tmp_path / "m"), "--max-steps", "0")
    assert code == 1 and "--max-steps must be a number from 1 up, got 0" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, where):
    args = ["translate", "--model", str(tmp_path / "none"), "x"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(AttendError, match="model folder not found"):
        main(args)


def test_missing_model_folder_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "attend", "translate", "--model", str(tmp_path / "none"), "x"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "model folder not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["quickstart", "train", "translate", "evaluate", "info"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: attend " + command in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1"), (["--beam", "0"], "--beam and --nbest"),
    (["--sample", "--top-p", "1.5"], "sampling needs"), (["--sample", "--temperature", "nan"], "sampling needs"),
    (["--alpha", "nan"], "--alpha must be a number from 0 up, got nan"), (["--alpha", "-1"], "--alpha must be"),
    (["--sample", "--seed", "99999999999999999999999"], "--seed must be from 0"),
    (["--sample", "--beam", "4"], "--beam and --alpha are for search"),
])
def test_bad_search_flags_are_one_line_errors(trained_folder, capsys, flags, message):
    code, out, err = run(capsys, "translate", "--model", str(trained_folder), *flags, "a b")
    assert code == 1 and out == "" and err.startswith("attend: error: ") and err.count("\n") == 1
    assert message in err


def test_text_arguments_that_are_not_utf8_are_named(trained_folder):
    result = subprocess.run([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "a b", b"a\xffb"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "argument 2: invalid UTF-8 at character 1" in result.stderr


def test_an_output_never_replaces_an_input_or_a_models_file(trained_folder, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a b\n")
    (tmp_path / "ref.txt").write_text("b a\n")
    m = str(trained_folder)
    for argv, what in (
        (["translate", "-m", m, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "in.txt")], "which this command reads"),
        (["translate", "-m", m, "a b", "-o", str(trained_folder / "model.safetensors")], "lies in the model folder"),
        (["evaluate", "-m", m, "--src", str(tmp_path / "in.txt"), "--ref", str(tmp_path / "ref.txt"),
          "-o", str(tmp_path / "ref.txt")], "which this command reads"),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 1 and what in err, argv
    assert (tmp_path / "in.txt").read_text() == "a b\n" and (tmp_path / "ref.txt").read_text() == "b a\n"
    assert main(["info", "-m", m]) == 0  # the weights are whole


def test_an_output_through_a_link_writes_its_target_and_keeps_its_permissions(trained_folder, tmp_path, capsys):
    target = tmp_path / "private.txt"
    target.write_text("old\n")
    target.chmod(0o600)
    (tmp_path / "link.txt").symlink_to(target)
    assert run(capsys, "translate", "-m", str(trained_folder), "a b", "-o", str(tmp_path / "link.txt"))[0] == 0
    assert (tmp_path / "link.txt").is_symlink() and target.read_text() != "old\n"
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_an_output_that_is_a_named_pipe_is_written_into(trained_folder, tmp_path, capsys):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)  # never holds pytest
    reader.start()
    assert run(capsys, "translate", "-m", str(trained_folder), "a b", "c d", "-o", str(pipe))[0] == 0
    reader.join(timeout=30)
    assert len(received[0].splitlines()) == 2 and stat.S_ISFIFO(pipe.stat().st_mode)  # still a pipe


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "meta.json").write_text("[]"), "meta.json: holds a JSON list, not an object"),
    (lambda f: (f / "search.json").write_text('{"beam": 0, "alpha": 1}'), "search.json: damaged (beam 0"),
    (lambda f: (f / "search.json").write_text("{"), "search.json: damaged"),
    (lambda f: ((f / "meta.json").unlink(), (f / "model.bin").write_bytes(b"x")), "a CTranslate2 export"),
    (lambda f: ((f / "config.yaml").unlink(), (f / "config.yaml").mkdir()), "config.yaml: Is a directory"),
])
def test_a_damaged_model_folder_is_one_line(trained_folder, tmp_path, capsys, damage, message):
    folder = tmp_path / "m"
    shutil.copytree(trained_folder, folder)
    damage(folder)
    code, out, err = run(capsys, "translate", "-m", str(folder), "a b")
    assert code == 1 and message in err and err.count("\n") == 1


def test_sigterm_leaves_an_output_file_as_it_was(trained_folder, tmp_path):
    (tmp_path / "in.txt").write_text("a b c d e f\n" * 200000)
    (tmp_path / "out.txt").write_text("earlier output\n")
    process = subprocess.Popen([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "--quiet",
                                "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt")],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.txt.*.tmp")) and time.time() < deadline:  # decoding has begun
        time.sleep(0.1)
    assert list(tmp_path.glob(".out.txt.*.tmp")), "translate did not begin writing within 60 s"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    assert (tmp_path / "out.txt").read_text() == "earlier output\n" and not list(tmp_path.glob(".out.txt.*"))


def test_evaluate_takes_files_or_a_lexicon_not_both(trained_folder, tmp_path, capsys):
    (tmp_path / "lex").write_text("AB  B A\n")
    code, _, err = run(capsys, "evaluate", "-m", str(trained_folder), "--lexicon", str(tmp_path / "lex"),
                       "--src", str(tmp_path / "lex"), "--ref", str(tmp_path / "lex"))
    assert code == 1 and "--src and --ref, or --lexicon, not both" in err


def test_int8_translation_runs_and_mostly_agrees(trained_folder, capsys):
    words = ["a b c", "d e f g", "h a b", "c c d e"]
    assert main(["translate", "-m", str(trained_folder), *words]) == 0
    fp32 = capsys.readouterr().out.splitlines()
    assert main(["translate", "-m", str(trained_folder), "--int8", *words]) == 0
    int8 = capsys.readouterr().out.splitlines()
    assert len(int8) == len(words) and sum(a == b for a, b in zip(fp32, int8)) >= 3


def test_streamed_translation_reports_progress_batch_by_batch(trained_folder):
    from attend.checkpoint import load_model
    from attend.inference import Translator

    lines = ["a b c", "", "d e", "f g a b"] * 5
    done = []
    translator = Translator(load_model(trained_folder), batch_size=4)
    outputs = list(translator.translate_stream(iter(lines), chunk_lines=10, progress=done.append))
    assert len(outputs) == 20 and sum(done) == 20 and max(done) <= 4  # a bar moves per batch, not per 10 lines


def test_a_failed_allocation_is_told_apart_from_other_runtime_errors():
    import torch

    from attend.cli import out_of_memory

    with pytest.raises(RuntimeError) as failed:
        torch.empty(2 ** 60, dtype=torch.uint8)  # an exabyte: PyTorch's CPU allocator refuses it
    assert out_of_memory(failed.value) and out_of_memory(MemoryError())
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_an_output_to_dev_stdout_appends_where_the_shell_redirected_it(trained_folder, tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    with open(log, "a") as appended:  # as `attend translate ... -o /dev/stdout >> log.txt`
        result = subprocess.run([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "a b",
                                 "-o", "/dev/stdout"], stdout=appended, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr
    assert log.read_text().startswith("earlier line\n") and len(log.read_text().splitlines()) == 2


def test_a_damaged_search_json_stops_only_what_needs_it(trained_folder, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(trained_folder, folder)
    (folder / "search.json").write_text("{")
    for flags in (["--beam", "3", "--alpha", "0.5"], ["--beam", "1"], ["--sample", "--seed", "1"]):
        assert run(capsys, "translate", "-m", str(folder), *flags, "a b")[0] == 0, flags
    assert "search.json: damaged" in run(capsys, "translate", "-m", str(folder), "a b")[2]
    code, out, _ = run(capsys, "info", "-m", str(folder))
    assert code == 0 and "search.json: damaged" in out and "validation" in out  # the rest is still described


def test_an_output_to_dev_stdout_redirected_into_the_input_is_refused(trained_folder, tmp_path):
    (tmp_path / "in.txt").write_text("a b\nc d\n")
    with open(tmp_path / "in.txt", "a") as appended:  # as `attend translate -i in.txt -o /dev/stdout >> in.txt`
        result = subprocess.run([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "-i",
                                 str(tmp_path / "in.txt"), "-o", "/dev/stdout"], stdout=appended,
                                stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1 and "which this command reads" in result.stderr
    assert (tmp_path / "in.txt").read_text() == "a b\nc d\n"


def test_ctrl_c_before_the_first_step_says_nothing_was_kept(tmp_path, capsys, monkeypatch):
    from attend.train import Trainer

    (tmp_path / "c.yaml").write_text("data: {recipe: copy, synthetic_size: 200}\n"
                                     "model: {family: rnn, hidden_size: 32, embed_dim: 16}\n"
                                     "train: {max_steps: 12, eval_every: 3, batch_tokens: 400}\n")
    original = Trainer._epoch_batches

    def ctrl_c_first(self):
        os.kill(os.getpid(), signal.SIGINT)  # taken by the training loop's handler before its first step
        return original(self)

    monkeypatch.setattr(Trainer, "_epoch_batches", ctrl_c_first)
    code, out, _ = run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m"), "--quiet")
    assert code == 130 and "nothing was trained" in out and not (tmp_path / "m").exists()


def test_an_output_never_replaces_the_file_behind_standard_input_or_through_a_link_to_stdout(trained_folder, tmp_path):
    (tmp_path / "in.txt").write_text("a b\n")
    with open(tmp_path / "in.txt") as given:  # as `attend translate -m M -o in.txt < in.txt`
        result = subprocess.run([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "-o",
                                 str(tmp_path / "in.txt")], stdin=given, capture_output=True, text=True)
    assert result.returncode == 1 and "is standard input, which this command reads" in result.stderr
    assert (tmp_path / "in.txt").read_text() == "a b\n"
    (tmp_path / "out").symlink_to("/dev/stdout")
    (tmp_path / "log.txt").write_text("earlier line\n")
    with open(tmp_path / "log.txt", "a") as appended:  # `-o out >> log.txt`, out a link to /dev/stdout
        subprocess.run([sys.executable, "-m", "attend", "translate", "-m", str(trained_folder), "a b", "-o",
                        str(tmp_path / "out")], stdout=appended, check=True)
    assert (tmp_path / "log.txt").read_text().startswith("earlier line\n")
