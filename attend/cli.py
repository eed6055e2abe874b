"""The `attend` command: parses arguments and calls the library, nothing more.

Errors a user can fix arrive as AttendError and are printed as one line with a
non-zero exit; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from pathlib import Path

from attend.config import METRICS
from attend.errors import AttendError

EXIT_USAGE, EXIT_ERROR = 2, 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with sigterm_as_interrupt(exiting=argv is None):
            return args.run(args) or 0
    except AttendError as e:
        if args.debug:
            raise
        print(f"attend: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("attend: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `attend translate ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file that cannot be read or written (no permission, a full disk, a folder)
        if args.debug:
            raise
        print(f"attend: error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    except (MemoryError, RuntimeError) as e:
        if args.debug or not out_of_memory(e):
            raise
        print("attend: error: out of memory; make the model, the batches (train.batch_tokens, --batch-size) or "
              "the inputs smaller", file=sys.stderr)
        return EXIT_ERROR


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: Python's, PyTorch's on the CPU, or a GPU's."""
    text = str(error)
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text.lower())


@contextlib.contextmanager
def sigterm_as_interrupt(exiting: bool = False):
    """SIGTERM (`timeout`, `kill`, `docker stop`) ends a command as Ctrl-C does, so temporary files are
    removed and an output file is left as it was. `exiting`: the process ends with the command (the `attend`
    program), so a SIGTERM after it is ignored rather than cutting its exit status short to 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN if exiting else previous)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attend", description="Train, run and inspect sequence-to-sequence models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    # `attend train --debug ...` too; SUPPRESS keeps a subcommand from resetting `attend --debug train ...`
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")

    _add_training_commands(commands, debug)
    _add_decoding_commands(commands, debug)
    _add_inspection_commands(commands, debug)
    return parser


def _add_training_commands(commands, debug: argparse.ArgumentParser) -> None:
    """Quickstart, train and average: the commands that make model folders."""
    p = commands.add_parser("quickstart", parents=[debug], help="train the default G2P model on CMUdict and score it",
                            description="Train the built-in English grapheme-to-phoneme model on CMUdict (no "
                                        "download), report WER/PER on the standard test words, show predictions.")
    p.add_argument("--out", default="attend-g2p", help="model folder to create (default: attend-g2p)")
    p.add_argument("--minutes", type=float, default=None, help="training time budget (default: the recipe's, 8)")
    p.add_argument("--beam", type=int, default=5, help="beam size for scoring the test words (default: 5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_quickstart)

    p = commands.add_parser("train", parents=[debug], help="train a model from a YAML config",
                            description="Train a model from a YAML config into a new model folder, or resume one.")
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("--out", help="model folder to create (default: runs/CONFIG_NAME)")
    p.add_argument("--resume", metavar="DIR", help="continue training this model folder from its last checkpoint")
    p.add_argument("--data-dir", metavar="DIR", help="folder of the corpus files the config names (sets data.data_dir)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="change one config value, e.g. --set model.dropout=0.3 (may be repeated)")
    p.add_argument("--max-steps", type=int, help="the step budget (sets train.max_steps; with --resume, changes it)")
    p.add_argument("--max-minutes", type=float,
                   help="the time budget in training minutes, every sitting counted (sets train.max_minutes; "
                        "with --resume, changes it)")
    p.add_argument("--patience", type=int,
                   help="validations without improvement before stopping early (sets train.patience; with "
                        "--resume, changes it, so a run that stopped early can go on)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("average", parents=[debug],
                            help="average the last checkpoints of a run into a new model folder",
                            description="Average the weights of the last N checkpoints (checkpoints/step-*) of a "
                                        "model folder into a new model folder; the original is only read.")
    p.add_argument("--model", "-m", required=True, help="model folder with checkpoints/")
    p.add_argument("--last", type=int, default=5, help="how many of the latest checkpoints (default: 5)")
    p.add_argument("--out", "-o", required=True, help="new model folder to write")
    p.set_defaults(run=cmd_average)


def _add_decoding_commands(commands, debug: argparse.ArgumentParser) -> None:
    """Translate, evaluate and tune: the commands that run a model on text."""
    p = commands.add_parser("translate", parents=[debug],
                            help="run a model on text (arguments, --input file, or stdin)",
                            description="One output line per input line. Inputs come from the arguments, from "
                                        "--input, or from standard input.")
    p.add_argument("text", nargs="*", help="inputs; each argument is one line")
    add_model_args(p)
    p.add_argument("--input", "-i", help="read inputs from this file (plain or .gz)")
    p.add_argument("--output", "-o", help="write outputs here instead of standard output")
    p.add_argument("--nbest", type=int, default=1,
                   help="outputs per input (the best of the beam, or samples with --sample); prints "
                        "INDEX<TAB>SCORE<TAB>TEXT lines")
    p.add_argument("--sample", action="store_true", help="sample instead of searching")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="sample from the smallest set with this probability mass")
    p.add_argument("--seed", type=int, help="seed for sampling")
    p.add_argument("--truncate", action="store_true",
                   help="cut an input longer than the model takes to the tokens that fit, with a warning "
                        "(default: stop with an error naming the line; an --output file is then not written)")
    p.add_argument("--engine", choices=("attend", "ctranslate2"), default="attend",
                   help="run the model in attend (default) or in CTranslate2, where --model is a folder written by "
                        "'attend export' and --alpha is CTranslate2's length penalty (score / length ** alpha)")
    p.set_defaults(run=cmd_translate)

    p = commands.add_parser("evaluate", parents=[debug],
                            help="score a model on a test set and print the metrics table",
                            description="Decode --src and score against --ref (repeat --ref for several references), "
                                        "or against a pronunciation lexicon (WORD  PH PH ... lines) with --lexicon.")
    add_model_args(p)
    p.add_argument("--src", help="source file, one input per line")
    p.add_argument("--ref", action="append", help="reference file aligned with --src (may be repeated)")
    p.add_argument("--lexicon", help="test lexicon: 'WORD  PH PH' lines, several lines per word allowed")
    p.add_argument("--output", "-o", help="also write the outputs to this file")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("tune", parents=[debug], help="choose the beam length penalty on validation data",
                            description="Decode validation data with beam search for each --alphas value, print the "
                                        "scores, and save the best beam/alpha as the model's default (search.json). "
                                        "Tune on validation data, never on the test set.")
    p.add_argument("--model", "-m", required=True, help="model folder")
    p.add_argument("--src", help="validation source file")
    p.add_argument("--ref", action="append", help="validation reference file (may be repeated)")
    p.add_argument("--lexicon", help="validation lexicon: 'WORD  PH PH' lines")
    p.add_argument("--beam", type=int, default=5, help="beam size (default: 5)")
    p.add_argument("--metric", choices=[m for m in METRICS if m != "loss"],
                   help="the score to choose by (default: the model's data.metric; chrF for a model trained "
                        "with metric: loss)")
    # Multi30k models chose 1.4 and 1.8 on validation (README), so the default grid reaches past them
    p.add_argument("--alphas", type=float, nargs="+", default=[round(0.2 * i, 1) for i in range(11)],
                   help="length penalties to try (default: 0 to 2 by 0.2)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences decoded together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_tune)


def _add_inspection_commands(commands, debug: argparse.ArgumentParser) -> None:
    """Explain, export and info: the commands that show or convert a model."""
    p = commands.add_parser("explain", parents=[debug],
                            help="draw how a model attends on one input: heatmaps, animation, web page",
                            description="Decode one input and draw its attention: PNG heatmaps always (per layer and "
                                        "head for a Transformer, plus self-attention), an animation of decoding "
                                        "with --animate, a self-contained interactive page with --html.")
    p.add_argument("text", help="the input, quoted if it has spaces")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", "-m", help="model folder")
    which.add_argument("--compare", nargs=2, metavar="DIR", help="two model folders, drawn side by side")
    p.add_argument("--out", "-o", default="explain",
                   help="folder for the pictures (default: explain); an earlier explain's pictures there are replaced")
    p.add_argument("--animate", action="store_true", help="also an animated GIF of decoding (and MP4 with ffmpeg)")
    p.add_argument("--html", action="store_true", help="also one self-contained HTML page to explore the maps")
    p.add_argument("--beam", type=int, help="beam size (1: greedy; default: the model's tuned search.json, as "
                                            "translate uses, else 1); beams show in the animation and page")
    p.add_argument("--alpha", type=float, help="beam length penalty, GNMT style (default: tuned, else 0 = none)")
    p.add_argument("--top-k", type=int, default=5, help="alternatives shown per decoding step (default: 5)")
    p.add_argument("--fps", type=float, default=1.5, help="animation frames per second (default: 1.5)")
    p.set_defaults(run=cmd_explain)

    p = commands.add_parser("export", parents=[debug], help="write a Transformer for another runtime (CTranslate2)",
                            description="Write a model folder's Transformer as a CTranslate2 model folder, with its "
                                        "tokenizers, for 'attend translate --engine ctranslate2' or CTranslate2 itself.")
    p.add_argument("--model", "-m", required=True, help="model folder (family transformer)")
    p.add_argument("--format", choices=("ctranslate2",), default="ctranslate2", help="what to write (default: ctranslate2)")
    p.add_argument("--out", "-o", required=True, help="new (or empty) folder to write")
    p.add_argument("--quantization", help="weight type: int8, int8_float32, int8_float16, int16, float16, bfloat16 "
                                          "(default: float32)")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("info", parents=[debug],
                            help="describe a model folder", description="Print what a model folder holds.")
    p.add_argument("--model", "-m", required=True, help="model folder")
    p.set_defaults(run=cmd_info)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="model folder written by attend train or quickstart")
    p.add_argument("--beam", type=int, help="beam size (default: the model's tuned search.json, else 1 = greedy)")
    p.add_argument("--alpha", type=float, help="beam length penalty, GNMT style (default: tuned, else 0 = none)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences decoded together")
    p.add_argument("--int8", action="store_true", help="quantize linear and RNN layers to int8 (CPU; smaller, "
                                                       "often faster, slightly less accurate)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# ----- commands ---------------------------------------------------------------------------------------
def cmd_quickstart(args) -> int:
    from attend.quickstart import run

    run(Path(args.out), minutes=args.minutes, progress=not args.quiet, beam=args.beam)
    return 0


def cmd_train(args) -> int:
    from attend import train

    for flag, value, least in (("--max-steps", args.max_steps, 1), ("--patience", args.patience, 1),
                               ("--max-minutes", args.max_minutes, 0)):
        if value is not None and not (least <= value < math.inf):
            raise AttendError(f"{flag} must be a number from {least} up{' (0: no time budget)' * (least == 0)}, "
                              f"got {value:g}")
    if args.resume and (args.config or args.data_dir or args.set or args.out):
        raise AttendError("--resume DIR continues a run in its own folder as it was configured; leave out "
                          "CONFIG, --out, --data-dir and --set")
    config, folder = (None, args.resume) if args.resume else training_config(args)
    try:
        if args.resume:
            from attend.resume import resume

            summary = resume(folder, not args.quiet, args.max_steps, args.max_minutes, args.patience)
        else:
            summary = train.train(config, folder, progress=not args.quiet)
        status = 0
    except train.TrainingInterrupted as stopped:
        summary, status = stopped.summary, 130  # a shell's status for a stop by Ctrl-C
        if not any(Path(folder, "checkpoints").glob("step-*")):  # stopped before its first step: nothing kept
            left = "" if args.resume else f", and {folder} was left as it was found"
            print(f"interrupted before the first step; nothing was trained{left}")
            return status
    best = "none yet" if summary["best"] is None else f"{summary['best']:.2f}"
    print(f"stopped at step {summary['step']} ({summary['stop_reason']}) after {summary['minutes']:.1f} min; "
          f"best validation {summary['metric']} {best}; model in {folder}")
    return status


def training_config(args):
    """(config, model folder) of a new run: the YAML file with --set, the budgets and --data-dir applied."""
    if not args.config:
        raise AttendError("attend train needs a CONFIG.yaml (or --resume DIR); see configs/ for examples")
    from attend.config import load_config, with_overrides

    flags = [f"train.{key}={value}" for key, value in (("max_steps", args.max_steps), ("patience", args.patience),
                                                       ("max_minutes", args.max_minutes)) if value is not None]
    config = with_overrides(load_config(args.config), args.set + flags)
    if args.data_dir:
        config.data.data_dir = str(Path(args.data_dir).resolve())
    return config, args.out or str(Path("runs") / Path(args.config).stem)


def cmd_translate(args) -> int:
    from attend.checkpoint import atomic_text_writer
    from attend.inference import Translator

    if args.sample and (args.beam is not None or args.alpha is not None):
        raise AttendError("--sample draws outputs one token at a time; --beam and --alpha are for search, leave "
                          "them out (--nbest N draws N samples)")
    lines, source, total = input_stream(args)
    if args.engine == "ctranslate2":
        from attend.export import CTranslate2Translator

        if args.int8:
            raise AttendError("--int8 is attend's own quantization; for CTranslate2 export with --quantization int8")
        options = search_options(args, tuned_search(args, args.model, ctranslate2=True), ctranslate2=True)
        translator = CTranslate2Translator(args.model, options, args.batch_size)
    else:
        loaded = load(args.model)
        options = search_options(args, tuned_search(args, loaded.path))
        translator = Translator(loaded, options, args.batch_size, int8=args.int8)
    bar = None
    if not args.quiet and total is not None and total > 1000:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="translating", unit="line", dynamic_ncols=True)
    nbest = args.nbest > 1
    with atomic_text_writer(args.output, keep=[args.input, args.model, stdin_file(source)]) as write:
        for i, outs in enumerate(translator.translate_stream(lines, source, progress=bar.update if bar else None)):
            write("".join(f"{i}\t{o.score:.4f}\t{o.text}\n" for o in outs) if nbest else outs[0].text + "\n")
    if bar is not None:
        bar.close()
    report_unseen(translator)
    return 0


def cmd_evaluate(args) -> int:
    from attend.evaluate import format_table, score
    from attend.inference import Translator

    sources, refs, source = read_test_set(args)
    inputs = [args.src, *(args.ref or []), args.lexicon, args.model]
    if args.output:
        from attend.checkpoint import refuse_an_input

        refuse_an_input(args.output, inputs)  # before the decoding, not after it
    loaded = load(args.model)
    tuned = tuned_search(args, loaded.path)
    options = search_options(args, tuned)
    print(describe_search(options, args, tuned, source), file=sys.stderr)
    translator = Translator(loaded, options, args.batch_size, int8=args.int8)
    hyps = translator.best(sources, source, progress=not args.quiet)
    if args.output:
        from attend.checkpoint import atomic_text_writer

        with atomic_text_writer(args.output, keep=inputs) as write:
            write("".join(h + "\n" for h in hyps))
    report_unseen(translator)
    print(format_table(score(loaded.config.data.metric, hyps, refs), len(sources)))
    return 0


def cmd_tune(args) -> int:
    from attend.evaluate import format_table
    from attend.tuning import best_alpha, save_search, tune_alpha

    if args.beam < 2:
        raise AttendError("--beam must be at least 2: the length penalty only matters to beam search")
    from attend.search import valid_alpha

    if not all(map(valid_alpha, args.alphas)):
        raise AttendError(f"--alphas must be numbers from 0 up, got {' '.join(f'{a:g}' for a in args.alphas)}")
    sources, refs, source = read_test_set(args)
    loaded = load(args.model)
    if not os.access(loaded.path, os.W_OK):  # found before the decoding, not after it
        raise AttendError(f"{loaded.path}: cannot write the tuned search.json into this model folder; copy the "
                          "folder somewhere writable and tune the copy")
    metric = args.metric or (loaded.config.data.metric if loaded.config.data.metric != "loss" else "chrf")
    print(f"{'alpha':>6}  {metric}", flush=True)
    results = tune_alpha(loaded, sources, refs, args.beam, args.alphas, args.batch_size, progress=not args.quiet,
                         metric=metric, on_result=lambda a, scores: print(f"{a:>6.2f}  {scores[metric]:.2f}", flush=True))
    alpha, value = best_alpha(results, metric)
    if all(scores["empty_outputs"] == len(sources) for _, scores in results):
        print("warning: every output is empty at every alpha; the model looks undertrained", file=sys.stderr)
    path = save_search(loaded.path, args.beam, alpha, metric, value, source)
    print(f"best: beam {args.beam}, alpha {alpha:g} ({metric} {value:.2f}); saved to {path}, "
          "used by translate and evaluate unless --beam/--alpha are given")
    print(format_table(dict(results)[alpha], len(sources)))
    return 0


def cmd_average(args) -> int:
    from attend.average import average_checkpoints

    out, chosen = average_checkpoints(args.model, args.out, args.last)
    print(f"averaged {len(chosen)} checkpoint{'s' * (len(chosen) > 1)} ({', '.join(c.name for c in chosen)}) "
          f"into {out}")
    if len(chosen) < args.last:
        from attend.checkpoint import load_folder_config

        keep = load_folder_config(Path(args.model)).train.keep_last
        why = f"train.keep_last = {keep} keeps no more" if len(chosen) >= keep else "the run has saved no more yet"
        print(f"note: the run has {len(chosen)} checkpoint{'s' * (len(chosen) > 1)}, fewer than --last {args.last}: "
              f"{why}", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    import time

    from attend.explain import explain

    if (args.beam is not None and args.beam < 1) or args.top_k < 1 or not 0.1 <= args.fps <= 60:
        raise AttendError("--beam and --top-k must be at least 1, and --fps from 0.1 to 60")
    from attend.search import valid_alpha

    if args.alpha is not None and not valid_alpha(args.alpha):
        raise AttendError(f"--alpha must be a number from 0 up, got {args.alpha:g}")
    check_utf8([args.text])
    started = time.perf_counter()
    models = [load(folder) for folder in (args.compare or [args.model])]
    result = explain(models, args.text, Path(args.out), animate=args.animate, html=args.html, beam_size=args.beam,
                     alpha=args.alpha, top_k=args.top_k, fps=args.fps)
    for note in result.notes:
        print(note)
    print(f"wrote {len(result.files)} file{'s' * (len(result.files) > 1)} in {time.perf_counter() - started:.1f} s:")
    for path in result.files:
        print(f"  {path}")
    return 0


def cmd_export(args) -> int:
    from attend.export import export_ctranslate2

    out = export_ctranslate2(load(args.model), args.out, args.quantization)
    print(f"wrote a CTranslate2 model ({args.quantization or 'float32'}) to {out}; "
          f"run it with: attend translate --engine ctranslate2 --model {out} TEXT")
    return 0


def cmd_info(args) -> int:
    from attend.models import count_parameters
    from attend.tuning import saved_search

    loaded = load(args.model)
    m, meta = loaded.config.model, loaded.meta
    family = m.family if m.family == "transformer" else f"{m.family} ({m.cell}, {m.attention if m.family == 'rnn-attention' else 'no'} attention)"
    print(f"model folder   {args.model}")
    print(f"family         {family}")
    print(f"parameters     {count_parameters(loaded.model):,}")
    print(f"layers         encoder {m.encoder_layers}, decoder {m.decoder_layers}; hidden {m.hidden_size}")
    print(f"tokenizers     source {loaded.src_tokenizer.kind} ({len(loaded.src_vocab)} types), "
          f"target {loaded.tgt_tokenizer.kind} ({len(loaded.tgt_vocab)} types)")
    d = loaded.config.data
    data = d.recipe or " / ".join(str(p) for p in (d.train_src, d.train_tgt) if p)
    print(f"data           {data}" + (f" (in {d.data_dir})" if d.data_dir and not d.recipe else ""))
    print(f"trained        step {meta.get('step')}, epoch {meta.get('epoch')}")
    if meta.get("averaged_steps"):
        print(f"averaged       steps {', '.join(map(str, meta['averaged_steps']))} of {meta.get('averaged_from')}")
    try:
        tuned = saved_search(loaded.path)
    except AttendError as e:  # info describes a folder as it is, damage included
        tuned = {}
        print(f"search         {e}")
    if tuned:
        print(f"search         beam {tuned['beam']}, alpha {tuned['alpha']:g} (search.json, tuned on "
              f"{tuned['tuned_on'] or 'unknown data'})")
    valid = meta.get("valid", {})
    if valid:
        print("validation     " + ", ".join(f"{k} {v:.2f}" for k, v in valid.items()))
    return 0


# ----- helpers ------------------------------------------------------------------------------------------
def load(folder: str):
    from attend.checkpoint import load_model

    return load_model(folder)


def tuned_search(args, folder, ctranslate2: bool = False) -> dict:
    """The folder's search.json, read only when the flags leave it something to say: not when sampling, and
    not for the alpha when the beam is given as 1 or CTranslate2 decodes (its length penalty is another)."""
    from attend.tuning import saved_search

    alpha_needed = args.alpha is None and not ctranslate2 and (args.beam is None or args.beam > 1)
    if getattr(args, "sample", False) or (args.beam is not None and not alpha_needed):
        return {}
    return saved_search(folder)


def search_options(args, tuned: dict, ctranslate2: bool = False):
    """Search settings from the flags; beam and alpha not given come from `tuned` (the model folder's
    search.json), else greedy. CTranslate2 takes the tuned beam but not the alpha: its length penalty is
    another formula."""
    from attend.inference import SearchOptions
    from attend.tuning import resolve_search

    sampling, nbest = getattr(args, "sample", False), getattr(args, "nbest", 1)
    beam, alpha = resolve_search(tuned, args.beam, 0.0 if ctranslate2 and args.alpha is None else args.alpha)
    if 1 <= beam < nbest and not sampling:  # SearchOptions.check widens it
        print(f"note: --nbest {nbest} needs {nbest} beams; searching with beam {nbest}", file=sys.stderr)
    if ctranslate2 and args.alpha is None and tuned.get("alpha") and max(beam, nbest) > 1 and not sampling:
        print(f"note: search.json's alpha {tuned['alpha']:g} is attend's length penalty; CTranslate2's is another "
              "formula, so it decodes with alpha 0 unless --alpha is given", file=sys.stderr)
    return SearchOptions(beam_size=beam, nbest=nbest, alpha=alpha, sample=sampling,
                         temperature=getattr(args, "temperature", 1.0), top_k=getattr(args, "top_k", 0),
                         top_p=getattr(args, "top_p", 1.0), seed=getattr(args, "seed", None),
                         truncate=getattr(args, "truncate", False))


def report_unseen(translator) -> None:
    note = translator.unseen.note()
    if note:
        print(note, file=sys.stderr)


def describe_search(options, args, saved: dict, source: str) -> str:
    """How evaluate decodes, and where those settings come from; a warning when search.json supplied them
    after being tuned on `source` itself, which makes the score no longer a held-out one."""
    from attend.tuning import tuned_on_same_file

    what = "greedy" if options.beam_size == 1 else f"beam {options.beam_size}, alpha {options.alpha:g}"
    from_saved = [name for name, flag in (("beam", args.beam), ("alpha", args.alpha))
                  if flag is None and (name == "beam" or options.beam_size > 1)]  # alpha matters only to beams
    if not saved or not from_saved:
        return f"decoding: {what}"
    line = f"decoding: {what} ({' and '.join(from_saved)} from search.json, tuned on {saved['tuned_on'] or 'unknown data'})"
    if tuned_on_same_file(saved, source):
        line += ("\nwarning: search.json was tuned on this same file, so this score is not a held-out one; "
                 "tune on validation data, or give --beam and --alpha")
    return line


def input_stream(args):
    """(lines, their name for errors, line count or None): arguments, a file read lazily, or stdin."""
    from attend.data.corpus import StreamLines, count_lines, iter_lines

    if args.text and args.input:
        raise AttendError("give inputs as arguments or with --input, not both")
    if args.text:
        check_utf8(args.text)
        return list(args.text), "argument", len(args.text)
    if args.input:
        lines = iter_lines(args.input)
        return lines, args.input, None if args.quiet else count_lines(args.input)
    if sys.stdin is None:  # started with standard input closed
        raise AttendError("no input: give TEXT arguments, --input FILE, or pipe lines to standard input")
    try:
        return StreamLines(sys.stdin.fileno()), "stdin", None
    except (AttributeError, OSError, ValueError):  # a stand-in stdin with no file behind it (a notebook's)
        from attend.data.corpus import decode_line

        return (decode_line(line.rstrip(b"\n"), "stdin", n) for n, line in enumerate(sys.stdin.buffer, 1)), "stdin", None


def stdin_file(source: str) -> str | None:
    """The file behind standard input when translate reads it (`< file`), which an --output must not replace."""
    import stat

    try:
        if source == "stdin" and stat.S_ISREG(os.fstat(0).st_mode) and os.path.exists("/proc/self/fd/0"):
            return "/proc/self/fd/0"
    except OSError:
        pass
    return None


def check_utf8(texts: list[str]) -> None:
    """Text arguments that the shell passed as bytes which are not UTF-8 (Python keeps them as surrogates)."""
    for number, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise AttendError(f"argument {number}: invalid UTF-8 at character {e.start}; give the text in UTF-8") from None


def read_test_set(args) -> tuple[list[str], list[list[str]], str]:
    """(inputs, references per input, name) from --src/--ref files or a --lexicon."""
    from attend.data.corpus import read_lines

    if args.lexicon and (args.src or args.ref):
        raise AttendError(f"attend {args.command} takes --src and --ref, or --lexicon, not both")
    if args.lexicon:
        from attend.recipes import group_references
        from attend.recipes.g2p_cmudict import read_lexicon_file

        items = group_references(read_lexicon_file(args.lexicon))
        sources, refs, source = [s for s, _ in items], [r for _, r in items], args.lexicon
    elif args.src and args.ref:
        sources, source = read_lines(args.src), args.src
        ref_files = [read_lines(r) for r in args.ref]
        for name, ref in zip(args.ref, ref_files):
            if len(ref) != len(sources):
                raise AttendError(f"{args.src} has {len(sources)} lines but {name} has {len(ref)}; they must be aligned")
        refs = [list(alts) for alts in zip(*ref_files)]
    else:
        raise AttendError(f"attend {args.command} needs --src and --ref, or --lexicon")
    if not sources:
        raise AttendError(f"{source}: no inputs to score")
    return sources, refs, source


if __name__ == "__main__":
    sys.exit(main())
