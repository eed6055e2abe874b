"""Joey NMT 2.3, the Transformer peer: train it on Multi30k en->de for a time budget and score it.

Joey NMT (Kreutzer, Bastings & Riezler 2019) is a small, readable PyTorch
seq2seq toolkit, the closest published peer to attend. This script races it
on the race's settings: the same data files as attend, one joint sentencepiece
model for both sides, a 3+3-layer pre-norm Transformer (d_model 256, 4 heads,
ff 1024, dropout 0.1, target embedding tied to the output layer), batches of
--batch-tokens padded tokens, Adam (lr 0.0005, betas 0.9/0.98) with 1,000
warm-up steps and inverse square root decay, label smoothing 0.1, gradient
norm clipped at 1.0, and a wall-clock budget. Its row goes next to attend's in
the same table.

Steps, each timed:
  1. venv     create --venv if `import joeynmt.training` fails there: `python3 -m venv`,
              `pip install torch==2.13.0` first (the CPU build lying on this machine's disk;
              joeynmt 2.3.0 asks only for torch>=1.12.0, which keeps it), then
              `pip install joeynmt==2.3.0 importlib-metadata sentencepiece==0.2.1`: joeynmt.helpers
              imports importlib_metadata without declaring it, and Joey's sentencepiece tokenizer
              calls SetVocabulary, which sentencepiece 0.2.2 and later no longer have.
              With --wheels DIR nothing is fetched (the GPU machine has no network): the new
              venv sees this interpreter's packages and gets Joey from the wheels in DIR.
  2. data     decompress train/val/test_2016_flickr.{en,de}.gz from --data, train one
              sentencepiece model (--subword, default unigram like attend's, character
              coverage 1.0) on the English and German training text, and write its pieces
              as the vocabulary of both sides (ids 0-3 = <unk> <pad> <s> </s>, Joey's own).
  3. train    `python -m joeynmt train config.yaml --skip-test`. Joey has no time budget,
              so the budget clock starts when Joey logs "EPOCH 1" (its training loop, as
              attend's clock starts at its own loop) and at the budget the process gets
              SIGINT: Joey catches the KeyboardInterrupt, logs "Interrupt at epoch E, step S."
              and saves the current weights as latest.ckpt. best.ckpt (best validation BLEU,
              greedy, checked every --eval-every steps) is decoded, or latest.ckpt when no
              validation ran or --checkpoint latest is given.
  4. decode   with --beam-alphas, first val with beam 5 for each alpha, keeping the alpha of
              the best BLEU (as attend's benchmark chooses attend's); then
              `python -m joeynmt translate config < test_2016_flickr.en > hyps`, once greedy
              and once with beam 5 (its `-o` option crashes in 2.3.0: translate() reads
              args.n_best, which lives in args.test, so the hypotheses are taken from stdout);
              Joey detokenizes with the sentencepiece model. Speed is the sentences over Joey's
              own "Generation took S[sec]." (model loading excluded). Joey's Transformer search
              re-runs the decoder and the output layer over the whole prefix at every step (no
              incremental state), and a batch runs until all its sentences end or reach 1.5 x its
              longest source: a barely trained model that never emits </s> decodes very slowly,
              hence --decode-limit for smoke tests.
  5. score    sacreBLEU (BLEU and chrF, default 13a tokenization, cased) of the
              detokenized output against test_2016_flickr.de, in this interpreter.

Training speed: Joey counts TARGET tokens only (batch.ntokens = non-pad positions of
trg[:, 1:], i.e. subwords + </s>), while attend counts source + target. The row's
`tokens_per_s_target` is the total_tokens of the checkpoint saved at the stop over the
budget less validation time (the "Generation took" and "Evaluation result ..., S[sec]"
seconds of train.log); `tokens_per_s_src_tgt` scales it by the training corpus's
(source + target) / target ratio, both sides counted with </s>, for a like-for-like number.
As a cross-check, Joey's own per-window rates are matched in train.log by
    Step:\\s+(\\d+), Batch Loss:.*?Tokens per Sec:\\s+(\\d+)
(each covers --log-every steps, validation excluded; their harmonic mean is kept). Note that
Joey's token batches are not length-bucketed: a shuffled stream is cut whenever sentences x
max(src, trg) length + 1 reaches --batch-tokens, so a batch holds far fewer real tokens than
its padded size. Peak memory is the ru_maxrss of the training process (os.wait4).

--no-decode stops after step 3 (a training-speed measurement); --decode-only runs steps 4
and 5 alone with the model of an earlier run (--workdir), writing its outputs and logs to a
temporary folder so the earlier run's stay as they were; --decode-batch-sentences N decodes
in batches of N sentences instead of --batch-tokens tokens. benchmarks/speed.py uses these
for its Joey NMT rows.

Everything runs with --threads CPU threads (OMP/MKL, default 1). With --gpu Joey trains and
decodes on CUDA; the venv then needs a CUDA build of torch (--torch).

    python benchmarks/peers/joeynmt.py --data ../shared/data/multi30k --minutes 120 \\
        --json runs/peers/joeynmt.json --workdir runs/peers/joeynmt-work
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = "joeynmt==2.3.0"
# joeynmt 2.3.0's requirements miss two things: joeynmt.helpers imports importlib_metadata, and its
# sentencepiece tokenizer calls SentencePieceProcessor.SetVocabulary, which sentencepiece 0.2.2 dropped.
EXTRA = ["importlib-metadata", "sentencepiece==0.2.1"]
SPLITS = {"train": "train", "dev": "val", "test": "test_2016_flickr"}
SRC, TRG = "en", "de"
STARTUP_LIMIT = 1800  # seconds Joey may take to load the data before its training loop starts
STEP_LINE = re.compile(r"Step:\s+(\d+), Batch Loss:.*?Tokens per Sec:\s+(\d+)")
INTERRUPT_LINE = re.compile(r"Interrupt at epoch (\d+), step (\d+)\.")
GENERATION_LINE = re.compile(r"Generation took ([\d.]+)\[sec\]")
PARAMS_LINE = re.compile(r"Total params: (\d+)")
VALID_LINE = re.compile(r"Evaluation result \(greedy\): bleu:\s+([\d.]+)")
EVAL_SECONDS_LINE = re.compile(r"Evaluation result \(greedy\):.*, ([\d.]+)\[sec\]")

STATS_SCRIPT = r"""
import json, sys, torch
stats = torch.load(sys.argv[1], map_location="cpu", weights_only=False)["stats_state"]
print(json.dumps({"steps": stats["steps"], "total_tokens": stats["total_tokens"]}))
"""

# Run inside the Joey venv (which has sentencepiece): train the joint model, write the
# vocabulary, and count subwords per side for the token-count conversion.
SPM_SCRIPT = r"""
import json, sys
import sentencepiece as spm
a = json.loads(sys.argv[1])
spm.SentencePieceTrainer.train(
    input=",".join(a["inputs"]), model_prefix=a["prefix"], vocab_size=a["vocab_size"],
    model_type=a["model_type"], character_coverage=1.0, num_threads=a["threads"],
    unk_id=0, pad_id=1, bos_id=2, eos_id=3, unk_piece="<unk>", pad_piece="<pad>",
    bos_piece="<s>", eos_piece="</s>", minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=a["prefix"] + ".model")
with open(a["prefix"] + ".vocab.txt", "w", encoding="utf-8") as f:
    f.writelines(sp.id_to_piece(i) + "\n" for i in range(sp.get_piece_size()))
counts = []
for path in a["inputs"]:
    with open(path, encoding="utf-8") as f:
        counts.append(sum(len(sp.encode(line.rstrip("\n"))) + 1 for line in f))
print(json.dumps({"pieces": sp.get_piece_size(), "src_tokens": counts[0], "trg_tokens": counts[1]}))
"""


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run(name: str, command: list[str], workdir: Path, env: dict[str, str] | None = None,
        stdin: Path | None = None) -> str:
    """Run one external step, stderr to workdir/NAME.log; its stdout; exit with one line naming it if it fails."""
    log = workdir / f"{name.replace(' ', '-')}.log"
    with log.open("w") as log_file, (stdin.open() if stdin else open(os.devnull)) as in_file:
        try:
            done = subprocess.run(command, stdin=in_file, stdout=subprocess.PIPE, stderr=log_file, env=env,
                                  text=True, check=True)
        except OSError as e:
            fail(f"{name} could not start: {e}")
        except subprocess.CalledProcessError as e:
            fail(f"{name} failed with exit status {e.returncode}: {last_line(log)} (log: {log})")
    return done.stdout


def succeeds(command: list[str]) -> bool:
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0


def ensure_venv(venv: Path, torch_spec: str, workdir: Path, wheels: Path | None = None) -> tuple[Path, float]:
    """The venv's python, after creating the venv and installing Joey NMT if needed; and the seconds spent.

    With `wheels` (a folder of Joey's wheels, benchmarks/peers/joeynmt_wheels.sh) nothing is fetched: the
    venv sees this interpreter's packages (its torch, a CUDA build on the GPU machine) through a .pth file,
    which works where this interpreter is itself a venv, unlike --system-site-packages, and the wheels are
    installed over them, so Joey's pins win.
    """
    python = venv / "bin" / "python"
    check = [str(python), "-c", ("import joeynmt.training, joeynmt.prediction, sentencepiece; "
                                 "sentencepiece.SentencePieceProcessor.SetVocabulary")]
    started = time.perf_counter()
    if python.is_file() and succeeds(check):
        return python, 0.0
    print(f"installing {PACKAGE} into {venv} (a few minutes)", flush=True)
    if not python.is_file():
        run("python3 -m venv", [sys.executable, "-m", "venv", str(venv)], workdir)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if wheels is not None:
        found = sorted(wheels.resolve().glob("*.whl"))
        if not any(w.name.startswith("joeynmt-") for w in found):
            fail(f"--wheels {wheels}: no joeynmt wheel there (benchmarks/peers/joeynmt_wheels.sh downloads them)")
        venv_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        Path(venv_site, "parent-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        run("pip install wheels", pip + ["--no-index", "--no-deps", *map(str, found)], workdir)
    else:
        run("pip install torch", pip + [torch_spec], workdir)
        # joeynmt 2.3.0 requires torch>=1.12.0, which the torch just installed meets, so pip keeps it.
        run("pip install joeynmt", pip + [PACKAGE, *EXTRA], workdir)
    if not succeeds(check):
        fail(f"{venv}: `import joeynmt.training` still fails after installing {PACKAGE}")
    return python, time.perf_counter() - started


def prepare_data(python: Path, data: Path, workdir: Path, vocab_size: int, model_type: str,
                 threads: int) -> tuple[dict, float]:
    """Plain-text splits and the joint sentencepiece model in workdir/data; its facts and the seconds spent."""
    started = time.perf_counter()
    out = workdir / "data"
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, stem in SPLITS.items():
        for lang in (SRC, TRG):
            source = data / f"{stem}.{lang}.gz"
            if not source.is_file():
                fail(f"{source} not found (--data must hold {stem}.{lang}.gz)")
            with gzip.open(source, "rt", encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f]
            (out / f"{split}.{lang}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            counts.setdefault(split, []).append(len(lines))
        if counts[split][0] != counts[split][1]:
            fail(f"{data}: {stem}.{SRC}.gz has {counts[split][0]} lines but {stem}.{TRG}.gz has {counts[split][1]}")
    spec = {"inputs": [str(out / f"train.{SRC}"), str(out / f"train.{TRG}")], "prefix": str(out / "spm"),
            "vocab_size": vocab_size, "model_type": model_type, "threads": threads}
    facts = json.loads(run("sentencepiece", [str(python), "-c", SPM_SCRIPT, json.dumps(spec)], workdir,
                           env=thread_env(threads)))
    facts["lines"] = {split: n for split, (n, _) in counts.items()}
    return facts, time.perf_counter() - started


def side(lang: str, data_dir: Path, max_length: int) -> dict:
    return {"lang": lang, "level": "bpe", "lowercase": False, "normalize": False, "max_length": max_length,
            "voc_file": str(data_dir / "spm.vocab.txt"), "tokenizer_type": "sentencepiece",
            "tokenizer_cfg": {"model_file": str(data_dir / "spm.model")}}


def stack(layers: int) -> dict:
    return {"type": "transformer", "num_layers": layers, "num_heads": 4, "hidden_size": 256, "ff_size": 1024,
            "dropout": 0.1, "layer_norm": "pre", "activation": "relu",
            "embeddings": {"embedding_dim": 256, "scale": True, "dropout": 0.1}}


def joey_config(args: argparse.Namespace, workdir: Path, beam: int = 1, checkpoint: Path | None = None,
                alpha: float | None = None) -> dict:
    """Joey NMT 2.3 configuration (keys as read by joeynmt.config, data, tokenizers and builders); `alpha`,
    the beam's length penalty, defaults to --beam-alpha."""
    data_dir = workdir / "data"
    batch = ({"batch_size": args.decode_batch_sentences, "batch_type": "sentence"} if args.decode_batch_sentences
             else {"batch_size": args.batch_tokens, "batch_type": "token"})
    testing = {**batch, "beam_size": beam,
               "beam_alpha": args.beam_alpha if alpha is None else alpha, "n_best": 1, "max_output_length": -1,  # -1: 1.5 x longest source
               "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"}}
    if checkpoint is not None:
        testing["load_model"] = str(checkpoint)
    return {
        "name": "multi30k-en-de-transformer", "joeynmt_version": "2.3.0", "model_dir": str(workdir / "model"),
        "use_cuda": args.gpu, "fp16": False, "random_seed": args.seed, "num_workers": 0,
        "data": {"train": str(data_dir / "train"), "dev": str(data_dir / "dev"), "test": str(data_dir / "test"),
                 "sample_dev_subset": args.valid_sentences or -1,
                 "dataset_type": "plain", "src": side(SRC, data_dir, args.max_length),
                 "trg": side(TRG, data_dir, args.max_length)},
        "testing": testing,
        "training": {
            "optimizer": "adam", "adam_betas": [0.9, 0.98], "learning_rate": 0.0005,
            "learning_rate_min": 1.0e-8,  # Joey stops once the lr falls below this; the budget stops it here
            "scheduling": "warmupinversesquareroot", "learning_rate_warmup": args.warmup,
            "weight_decay": 0.0, "label_smoothing": 0.1, "loss": "crossentropy", "normalization": "tokens",
            "clip_grad_norm": 1.0, "batch_size": args.batch_tokens, "batch_type": "token", "batch_multiplier": 1,
            "epochs": 100000, "validation_freq": args.eval_every, "logging_freq": args.log_every,
            "early_stopping_metric": "bleu", "keep_best_ckpts": 1, "shuffle": True, "overwrite": True,
            "print_valid_sents": [0, 1, 2]},
        "model": {"initializer": "xavier_uniform", "bias_initializer": "zeros", "init_gain": 1.0,
                  "embed_initializer": "xavier_uniform", "embed_init_gain": 1.0,
                  "tied_embeddings": False, "tied_softmax": True,
                  "encoder": stack(3), "decoder": stack(3)},
    }


def write_config(config: dict, path: Path) -> Path:
    try:
        import yaml
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    except ImportError:  # YAML is a superset of JSON
        path.write_text(json.dumps(config, indent=1))
    return path


def wait_child(pid: int, block: bool) -> tuple[int, int] | None:
    """(exit code, peak RSS in bytes) of child pid once it has ended, else None (only when not block)."""
    done, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024


def train(python: Path, config: Path, workdir: Path, minutes: float, threads: int) -> dict:
    """Run Joey's training until the budget, then interrupt it; timings, peak memory and the log path."""
    model_dir = workdir / "model"
    train_log, console = model_dir / "train.log", workdir / "train.console.log"
    command = [str(python), "-m", "joeynmt", "train", str(config), "--skip-test"]
    launched = time.monotonic()
    with console.open("w") as out:
        try:
            # A shell starts background jobs (`nohup ... &`) with SIGINT ignored, children inherit that, and
            # Python then installs no KeyboardInterrupt handler: Joey would never hear the budget's SIGINT.
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=thread_env(threads),
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        except OSError as e:
            fail(f"joeynmt train could not start: {e}")
    loop_started = interrupted = None
    ended = None
    while ended is None:
        time.sleep(0.5)
        ended = wait_child(proc.pid, block=False)
        now = time.monotonic()
        if loop_started is None and train_log.is_file() and " - EPOCH 1" in train_log.read_text(errors="replace"):
            loop_started = now
            print(f"Joey's training loop started after {now - launched:.1f} s; training for {minutes:g} min",
                  flush=True)
        if ended is None and loop_started is None and now - launched > STARTUP_LIMIT:
            os.kill(proc.pid, signal.SIGKILL)
            wait_child(proc.pid, block=True)
            fail(f"joeynmt train had not started its training loop after {STARTUP_LIMIT} s (log: {console})")
        if ended is None and interrupted is None and loop_started is not None and now - loop_started >= 60 * minutes:
            os.kill(proc.pid, signal.SIGINT)
            interrupted = now
        if ended is None and interrupted is not None:
            if now - interrupted > 300:
                os.kill(proc.pid, signal.SIGKILL)
            elif now - interrupted > 240:
                os.kill(proc.pid, signal.SIGTERM)
    proc.returncode, peak_rss = ended  # reaped by wait4; tell Popen so it does not wait again
    finished = time.monotonic()
    if interrupted is None:
        fail(f"joeynmt train ended on its own (exit status {proc.returncode}) before the budget: "
             f"{last_line(console)} (log: {console})")
    if proc.returncode != 0:
        print(f"note: joeynmt train exited with status {proc.returncode} after SIGINT (log: {console})",
              file=sys.stderr)
    return {"startup_seconds": loop_started - launched, "train_seconds": interrupted - loop_started,
            "stop_seconds": finished - interrupted, "process_seconds": finished - launched,
            "peak_rss_bytes": peak_rss, "exit_status": proc.returncode}


def read_train_log(path: Path) -> dict:
    """Steps, parameters, Joey's logged rates, validation BLEU and seconds spent validating."""
    text = path.read_text(errors="replace")
    steps_rates = [(int(step), int(rate)) for step, rate in STEP_LINE.findall(text)]
    interrupt = INTERRUPT_LINE.findall(text)
    params = PARAMS_LINE.findall(text)
    if not steps_rates and not interrupt:
        fail(f"{path}: no training step logged before the budget ran out; raise --minutes")
    steps = int(interrupt[-1][1]) if interrupt else steps_rates[-1][0]
    rates = [rate for _, rate in steps_rates if rate > 0]
    return {"steps": steps, "parameters": int(params[-1]) if params else None,
            "tokens_per_s": statistics.harmonic_mean(rates) if rates else float("nan"),
            "tokens_per_s_median": statistics.median(rates) if rates else float("nan"),
            "logged_rates": rates, "valid_bleu": [float(b) for b in VALID_LINE.findall(text)],
            "valid_seconds": sum(map(float, GENERATION_LINE.findall(text) + EVAL_SECONDS_LINE.findall(text)))}


def decode(python: Path, config: Path, source: Path, output: Path, workdir: Path, threads: int,
           name: str) -> dict:
    """Translate source with Joey; its seconds (Joey's own generation time and the process wall clock)."""
    console = workdir / f"{name}.log"
    started = time.perf_counter()
    with source.open() as stdin, output.open("w") as out, console.open("w") as err:
        try:
            proc = subprocess.Popen([str(python), "-m", "joeynmt", "translate", str(config)],
                                    stdin=stdin, stdout=out, stderr=err, env=thread_env(threads))
        except OSError as e:
            fail(f"joeynmt translate could not start: {e}")
        proc.returncode, peak_rss = wait_child(proc.pid, block=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        fail(f"{name} failed with exit status {proc.returncode}: {last_line(console)} (log: {console})")
    generation = GENERATION_LINE.findall(console.read_text(errors="replace"))
    if not generation:
        fail(f"{console}: no 'Generation took' line from joeynmt translate")
    return {"generation_seconds": float(generation[-1]), "process_seconds": wall, "peak_rss_bytes": peak_rss}


def score(hyp_path: Path, ref_path: Path, limit: bool) -> dict:
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError:
        fail("sacrebleu is missing from this interpreter; run the script with the project's .venv/bin/python")
    hyps = hyp_path.read_text(encoding="utf-8").splitlines()
    refs = ref_path.read_text(encoding="utf-8").splitlines()[:len(hyps)] if limit else \
        ref_path.read_text(encoding="utf-8").splitlines()
    if len(hyps) != len(refs):
        fail(f"{hyp_path}: {len(hyps)} translations for {len(refs)} references")
    leftovers = sum("\u2581" in h for h in hyps)
    if leftovers:
        print(f"note: {leftovers} translations still hold the sentencepiece space mark", file=sys.stderr)
    bleu, chrf = BLEU(), CHRF()
    return {"bleu": bleu.corpus_score(hyps, [refs]).score, "chrf": chrf.corpus_score(hyps, [refs]).score,
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
            "empty": sum(not h.strip() for h in hyps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with train/val/test_2016_flickr.{en,de}.gz "
                                                  "(e.g. ../shared/data/multi30k); required")
    parser.add_argument("--minutes", type=float, default=120.0, help="training budget, wall clock of Joey's "
                                                                      "training loop (default 120)")
    parser.add_argument("--venv", type=Path, default=Path("runs/peers/joeynmt-venv"),
                        help=f"virtual environment with {PACKAGE} (created when missing)")
    parser.add_argument("--torch", default="torch==2.13.0",
                        help="torch requirement installed into a new venv before Joey (default: the CPU build "
                             "on this machine's disk; an unpinned torch pulls a multi-GB CUDA build)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="joint sentencepiece vocabulary size")
    parser.add_argument("--subword", choices=["unigram", "bpe"], default="unigram",
                        help="sentencepiece model type (attend's subword tokenizer is unigram)")
    parser.add_argument("--batch-tokens", type=int, default=4096,
                        help="batch size in padded tokens, sentences x max(src, trg) length + 1, for training "
                             "and decoding")
    parser.add_argument("--eval-every", type=int, default=1000, help="validate (greedy BLEU on val) every N steps")
    parser.add_argument("--log-every", type=int, help="log the training rate every N steps (default: the "
                                                      "largest divisor of --eval-every up to 100)")
    parser.add_argument("--warmup", type=int, default=1000, help="learning-rate warm-up steps")
    parser.add_argument("--max-length", type=int, default=100, help="drop training pairs longer than this "
                                                                    "in subwords")
    parser.add_argument("--beam-alpha", type=float, default=1.0,
                        help="Joey's GNMT length penalty for beam search (-1: none)")
    parser.add_argument("--beam-alphas", type=float, nargs="+", metavar="ALPHA",
                        help="choose the beam-5 length penalty among these by BLEU on val, as attend's "
                             "benchmark does (default: use --beam-alpha untuned)")
    parser.add_argument("--checkpoint", choices=["best", "latest"], default="best",
                        help="checkpoint to decode: best validation BLEU (default) or the weights at the stop")
    parser.add_argument("--valid-sentences", type=int, default=0,
                        help="validate on a random N of the 1,014 val sentences (Joey's sample_dev_subset; "
                             "default 0: all)")
    parser.add_argument("--decode-limit", type=int, default=0,
                        help="decode only the first N test (and, with --beam-alphas, val) sentences (smoke "
                             "tests; default 0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (OMP/MKL) for every Joey process")
    parser.add_argument("--wheels", type=Path, help="build a new venv offline from the wheels in this folder, "
                        "over this interpreter's packages (its torch), instead of fetching torch and Joey")
    parser.add_argument("--gpu", action="store_true", help="train and decode on CUDA (needs a CUDA torch)")
    parser.add_argument("--workdir", type=Path, help="folder for data, model and logs (default: a new temporary "
                                                     "one, removed after a successful run)")
    parser.add_argument("--json", type=Path, help="write the result row here")
    parser.add_argument("--no-decode", action="store_true", help="train only (training speed)")
    parser.add_argument("--decode-only", action="store_true",
                        help="decode only, with the model of an earlier run in --workdir (decoding speed)")
    parser.add_argument("--decode-batch-sentences", type=int, default=0,
                        help="decode in batches of N sentences (default 0: batches of --batch-tokens tokens)")
    args = parser.parse_args()
    if args.decode_only:
        if args.no_decode:
            parser.error("--decode-only and --no-decode exclude each other")
        if args.workdir is None or not (args.workdir / "model").is_dir() or \
                not (args.workdir / "data" / f"test.{SRC}").is_file():
            parser.error("--decode-only needs --workdir, the folder of an earlier run (with model/ and data/)")
    elif args.data is None:
        parser.error("--data is required")
    elif not args.data.is_dir():
        fail(f"{args.data}: no such folder (--data)")
    if args.minutes <= 0 or args.eval_every <= 0 or args.batch_tokens <= 0 or args.vocab_size <= 4:
        parser.error("--minutes, --eval-every, --batch-tokens and --vocab-size must be positive")
    args.log_every = args.log_every or max(d for d in range(1, min(100, args.eval_every) + 1)
                                           if args.eval_every % d == 0)
    if args.eval_every % args.log_every:
        parser.error("--eval-every must be a multiple of --log-every (Joey requires it)")

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="joeynmt-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    python, venv_seconds = ensure_venv(args.venv.resolve(), args.torch, workdir, args.wheels)
    if args.gpu and not succeeds([str(python), "-c", "import torch, sys; sys.exit(not torch.cuda.is_available())"]):
        fail(f"--gpu: torch in {args.venv} sees no CUDA device (install a CUDA build with --torch in a new venv)")
    row = {"system": "Joey NMT 2.3.0 Transformer 3+3", "device": "cuda" if args.gpu else f"cpu x{args.threads}",
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "seconds": {"venv": venv_seconds}}
    if args.decode_only:
        test_lines = len((workdir / "data" / f"test.{SRC}").read_text(encoding="utf-8").splitlines())
    else:
        test_lines = train_phase(args, python, workdir, row)
    if args.decode_only:  # the earlier run's outputs and logs stay as they are
        with tempfile.TemporaryDirectory(prefix="joeynmt-decode-") as scratch:
            row.update(decode_phase(args, python, workdir, test_lines, Path(scratch)))
    elif not args.no_decode:
        row.update(decode_phase(args, python, workdir, test_lines, workdir))
    print_row(row, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=1) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir)


def train_phase(args: argparse.Namespace, python: Path, workdir: Path, row: dict) -> int:
    """Prepare the data, train Joey for the budget and add the training numbers to row; the test set's size."""
    facts, data_seconds = prepare_data(python, args.data, workdir, args.vocab_size, args.subword, args.threads)
    print(f"sentencepiece {args.subword}: {facts['pieces']} pieces; training text {facts['src_tokens']:,} "
          f"{SRC} + {facts['trg_tokens']:,} {TRG} subwords (with </s>)", flush=True)
    train_config = write_config(joey_config(args, workdir), workdir / "config.yaml")
    shutil.rmtree(workdir / "model", ignore_errors=True)
    timing = train(python, train_config, workdir, args.minutes, args.threads)
    log = read_train_log(workdir / "model" / "train.log")
    print(f"stopped at step {log['steps']} after {timing['train_seconds']:.0f} s of training "
          f"({timing['stop_seconds']:.1f} s to stop); peak RSS {timing['peak_rss_bytes'] / 2**20:,.0f} MiB", flush=True)
    stats = json.loads(run("checkpoint stats", [str(python), "-c", STATS_SCRIPT,
                                                str(workdir / "model" / "latest.ckpt")], workdir))
    tokens_per_s = stats["total_tokens"] / max(timing["train_seconds"] - log["valid_seconds"], 1e-9)
    ratio = (facts["src_tokens"] + facts["trg_tokens"]) / facts["trg_tokens"]
    row.update({"budget_minutes": args.minutes, "steps": log["steps"], "parameters": log["parameters"],
                "tokens_per_s_target": tokens_per_s, "tokens_per_s_src_tgt": tokens_per_s * ratio,
                "src_tgt_over_target": ratio, "target_tokens_trained": stats["total_tokens"],
                "validation_seconds": log["valid_seconds"],
                "logged_tokens_per_s_target_harmonic_mean": log["tokens_per_s"],
                "logged_tokens_per_s_target_median": log["tokens_per_s_median"],
                "peak_rss_mib": timing["peak_rss_bytes"] / 2**20, "valid_bleu_greedy": log["valid_bleu"],
                "logged_tokens_per_s": log["logged_rates"], "train_pairs": facts["lines"]["train"],
                "train_exit_status": timing["exit_status"]})
    row["seconds"].update({"data": data_seconds, **{k: v for k, v in timing.items() if k.endswith("seconds")}})
    return facts["lines"]["test"]


def tune_alpha(args: argparse.Namespace, python: Path, workdir: Path, checkpoint: Path,
               out: Path) -> tuple[float, dict]:
    """The --beam-alphas value whose beam-5 output scores the highest BLEU on val (ties: the smaller), and
    every alpha's score: the same choice, on the same data, that attend's benchmark makes for attend."""
    source, reference = workdir / "data" / f"dev.{SRC}", workdir / "data" / f"dev.{TRG}"
    if args.decode_limit:  # a smoke test tunes on as few lines as it decodes
        source = out / f"val.first{args.decode_limit}.{SRC}"
        lines = (workdir / "data" / f"dev.{SRC}").read_text(encoding="utf-8").splitlines(keepends=True)
        source.write_text("".join(lines[:args.decode_limit]), encoding="utf-8")
    scores = {}
    for alpha in args.beam_alphas:
        config = write_config(joey_config(args, workdir, 5, checkpoint, alpha), out / f"config.val-alpha{alpha:g}.yaml")
        output = out / f"val.alpha{alpha:g}.{TRG}"
        decode(python, config, source, output, out, args.threads, f"translate-val-alpha{alpha:g}")
        scores[alpha] = score(output, reference, bool(args.decode_limit))["bleu"]
        print(f"val, beam 5, alpha {alpha:g}: BLEU {scores[alpha]:.2f}", flush=True)
    best = max(scores, key=lambda a: (scores[a], -a))
    return best, {f"{a:g}": b for a, b in scores.items()}


def decode_phase(args: argparse.Namespace, python: Path, workdir: Path, test_lines: int, out: Path) -> dict:
    """Translate the test set greedy and with beam 5 from workdir's checkpoint, writing configs, outputs and
    logs into out; speeds and scores."""
    model_dir = workdir / "model"
    checkpoint = model_dir / "best.ckpt"
    if args.checkpoint == "latest" or not checkpoint.exists():
        checkpoint = model_dir / "latest.ckpt"
    if not checkpoint.exists():
        fail(f"{model_dir}: Joey saved no checkpoint (log: {workdir / 'train.console.log'})")
    checkpoint = checkpoint.resolve()
    source, reference = workdir / "data" / f"test.{SRC}", workdir / "data" / f"test.{TRG}"
    sentences = test_lines
    if 0 < args.decode_limit < sentences:
        sentences = args.decode_limit
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:sentences]
        source = out / f"test.first{sentences}.{SRC}"
        source.write_text("".join(lines), encoding="utf-8")
    alpha, tuning = tune_alpha(args, python, workdir, checkpoint, out) if args.beam_alphas else (args.beam_alpha, {})
    results = {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        config = write_config(joey_config(args, workdir, beam, checkpoint, alpha), out / f"config.{name}.yaml")
        output = out / f"test.{name}.{TRG}"
        speed = decode(python, config, source, output, out, args.threads, f"translate-{name}")
        results[name] = {**speed, "sentences_per_s": sentences / speed["generation_seconds"],
                         **score(output, reference, sentences < test_lines)}
        print(f"{name}: BLEU {results[name]['bleu']:.2f}, chrF {results[name]['chrf']:.2f}, "
              f"{results[name]['sentences_per_s']:.1f} sentences/s", flush=True)
    return {"bleu_greedy": results["greedy"]["bleu"], "bleu_beam5": results["beam5"]["bleu"],
            "chrf_greedy": results["greedy"]["chrf"], "chrf_beam5": results["beam5"]["chrf"],
            "sentences_per_s_greedy": results["greedy"]["sentences_per_s"],
            "sentences_per_s_beam5": results["beam5"]["sentences_per_s"],
            "decode_peak_rss_mib": max(r["peak_rss_bytes"] for r in results.values()) / 2**20,
            "checkpoint": checkpoint.name, "beam_alpha": alpha, "valid_bleu_beam5_by_alpha": tuning,
            "bleu_signature": results["greedy"]["bleu_signature"],
            "chrf_signature": results["greedy"]["chrf_signature"], "decode": results, "test_sentences": sentences}


def print_row(row: dict, args: argparse.Namespace) -> None:
    """The result as one markdown table row; '-' for a phase that did not run."""
    def cell(key: str, form: str) -> str:
        return format(row[key], form) if key in row else "-"

    rates = (f"{row['tokens_per_s_target']:,.0f}; {row['tokens_per_s_src_tgt']:,.0f}"
             if "tokens_per_s_target" in row else "-")
    budget = f"{args.minutes:g} min" if "steps" in row else "-"
    memory = max(row.get("peak_rss_mib", 0), row.get("decode_peak_rss_mib", 0))
    print("| system | budget | steps | train tok/s (tgt; src+tgt) | BLEU greedy | BLEU beam 5 | chrF beam 5 | "
          "sent/s greedy | sent/s beam 5 | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {row['system']} | {budget} | {cell('steps', 'd')} | {rates} | {cell('bleu_greedy', '.2f')} | "
          f"{cell('bleu_beam5', '.2f')} | {cell('chrf_beam5', '.2f')} | {cell('sentences_per_s_greedy', '.1f')} | "
          f"{cell('sentences_per_s_beam5', '.1f')} | {memory:,.0f} MiB |")
    if "bleu_signature" in row:
        print(f"BLEU: {row['bleu_signature']}")


if __name__ == "__main__":
    main()
