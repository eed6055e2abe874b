"""Speed benchmark: training and decoding throughput of attend's Transformer, with its peers, in one run.

On the Multi30k en-de Transformer (3+3 layers, d_model 256, 4 heads, ff 1024,
the size of the Joey NMT race) this measures, on this machine and in one run:

- the machine's matmul peak (GFLOP/s of a 1024^3 matmul, fp32 and bf16);
- training tokens/s (source + target, real tokens), the padding share of the
  length-bucketed batches, the model FLOP/s achieved and its share of the
  measured fp32 peak (MFU), in fp32, and in bf16 where the CPU has bf16
  instructions (elsewhere bf16 is emulated and the row says so);
- decoding of test_2016_flickr: sentences/s and output tokens/s, greedy and
  beam 5, at batch 1 (the first --batch1-sentences sentences) and batch 64,
  for attend fp32 and int8 and, when the `ctranslate2` package is installed,
  CTranslate2 fp32 and int8 of the same exported model, each engine in a
  process of its own, the engines taking turns for --rounds rounds (medians,
  and CTranslate2's speed over attend's round by round);
- how cost grows: decoding time per token as the output grows from 10 to 200
  tokens (with attend's key/value cache, and recomputing the prefix at every
  step as a cache-less decoder does), and training tokens/s as the batch grows.

With --device cuda the same rows are measured on the GPU: the peak is an
8192^3 matmul in fp32 and bf16, training runs in fp32 and under bf16 autocast,
timed after one untimed pass over the same batches (kernels are picked per
shape), and decoding covers attend fp32 only (int8 and CTranslate2 are the
CPU's rows).

With --joey-workdir, Joey NMT 2.3 is measured in the same run, in its own
virtual environment, through benchmarks/peers/joeynmt.py: its training
tokens/s over --joey-minutes of training on the same data (in turns with
attend's fp32 training, --train-rounds rounds, medians and ratios round by
round, like the decoding engines), and its decoding
speed with the model of an earlier joeynmt.py run (the folder given), at
batches of 1 and 64 sentences like attend's rows. Decoding needs a trained
attend model folder (--model), e.g. the one benchmarks/multi30k.py writes;
training uses the data folder (--data).

    python benchmarks/speed.py --data ../shared/data/multi30k --model runs/cpu2h/transformer \\
        --threads 2 --joey-workdir runs/peers/joeynmt-2h
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attend.checkpoint import load_model  # noqa: E402
from attend.config import load_config  # noqa: E402
from attend.data.batching import bucket_batches, collate  # noqa: E402
from attend.data.corpus import read_lines  # noqa: E402
from attend.data.vocab import BOS_ID, PAD_ID  # noqa: E402
from attend.device import autocast, cpu_has_bf16, matmul_gflops, pick_device, synchronize  # noqa: E402
from attend.evaluate import bleu_chrf  # noqa: E402
from attend.inference import SearchOptions, Translator  # noqa: E402
from attend.train import make_optimizer, prepare  # noqa: E402
from attend.models import build_model  # noqa: E402
from attend.models.inference_linear import (PreparedWeight, onednn_available, onednn_linear,  # noqa: E402
                                            onednn_reorder)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (10**6 bytes). Linux's VmHWM belongs to the process's own memory; getrusage's
    peak carries over into a spawned process from its parent (the engines' processes would report the
    training's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # in kB, which Linux means as KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # Linux: KiB -> MB


def forward_flops(cfg, vocab: int, src_len: int, tgt_len: int) -> float:
    """Matmul FLOPs of one teacher-forced forward pass of one sentence pair (2 per multiply-add)."""
    d, ff = cfg.hidden_size, cfg.ff_size
    encoder = cfg.encoder_layers * (src_len * (4 * d * d + 2 * d * ff) + 2 * src_len * src_len * d)
    decoder = cfg.decoder_layers * (tgt_len * (4 * d * d + 2 * d * d + 2 * d * ff) + src_len * 2 * d * d
                                    + tgt_len * tgt_len * d + 2 * tgt_len * src_len * d)
    return 2.0 * (encoder + decoder + tgt_len * d * vocab)


def train_speed(model, data, batch_tokens: int, precision: str, steps: int, device: torch.device) -> dict:
    """tokens/s, padding share and achieved FLOP/s over `steps` training steps, after warming up.

    On a GPU the warm-up is one untimed pass over the same batches, because
    kernels are chosen (and some built) per tensor shape the first time it is
    seen; a long run sees each bucketed shape many times, so steady state is
    what a user gets. On the CPU two warm-up steps suffice.
    """
    cfg = model.cfg
    model.to(device)
    optimizer = make_optimizer(model, load_config(ROOT / "configs" / "multi30k-en-de-transformer.yaml").train)
    cuda = device.type == "cuda"
    batches = bucket_batches(data.examples, batch_tokens, __import__("random").Random(0))[: steps + (0 if cuda else 2)]
    if len(batches) < (1 if cuda else 3):
        raise SystemExit(f"the corpus makes only {len(batches)} batches of {batch_tokens} tokens; use more data")
    warmup, timed = (batches, batches) if cuda else (batches[:2], batches[2:])
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def step(batch):
        with autocast(precision, device):
            logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (batch, tgt_len, vocab)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD_ID,
                               label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for indices in warmup:
        step(collate(data.examples, indices).to(device))
    tokens = padded = 0.0
    synchronize(device)
    started = time.perf_counter()
    for indices in timed:
        batch = collate(data.examples, indices)  # counted on the CPU, so the GPU is never waited for
        tokens += int(batch.src_mask.sum()) + batch.n_tgt_tokens
        padded += batch.src.numel() + batch.tgt_out.numel()
        step(batch.to(device))
    synchronize(device)
    seconds = time.perf_counter() - started
    # useful work only: each sentence at its real lengths, padding not counted
    flops = sum(3 * forward_flops(cfg, model.out.out_features, len(data.examples[j][0]), len(data.examples[j][1]) + 1)
                for indices in timed for j in indices)
    row = {"tokens_per_s": tokens / seconds, "padding": 1 - tokens / padded, "gflops": flops / seconds / 1e9,
           "steps": len(timed)}
    if device.type == "cuda":
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def decode_speed(translator, lines: list[str], refs: list[str] | None = None) -> dict:
    """Sentences/s and output tokens/s; with `refs`, also the BLEU of the outputs (fast paths must not lose it)."""
    translator.translate(lines[:2])  # warm-up: first-call allocations and kernel choices are not decoding speed
    started = time.perf_counter()
    outputs = translator.translate(lines)
    seconds = time.perf_counter() - started
    out_tokens = sum(len(o[0].tokens) + 1 for o in outputs)
    row = {"sentences_per_s": len(lines) / seconds, "tokens_per_s": out_tokens / seconds}
    if refs is not None:
        row["bleu"] = bleu_chrf([o[0].text for o in outputs], [[r] for r in refs])["bleu"]
    return row


@torch.no_grad()
def per_token_cost(model, device: torch.device, lengths=(10, 50, 100, 200)) -> list[dict]:
    """ms per output token for outputs of each length: cached steps vs recomputing the whole prefix."""
    model.to(device)
    src = torch.randint(4, 100, (1, 20), device=device)
    src_mask = src != PAD_ID
    rows = []
    for length in (min(lengths), *lengths):  # the first pass only warms up: weights prepared, kernels chosen
        memory = model.encode(src, src_mask)
        state, prev = model.init_state(memory), torch.full((1,), BOS_ID, device=device)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(length):
            logits, state, _ = model.step(prev, state, memory)
            prev = logits.argmax(-1)
        synchronize(device)
        cached = (time.perf_counter() - started) / length
        prefix = torch.full((1, 1), BOS_ID, device=device)
        started = time.perf_counter()
        for _ in range(length):
            logits, _ = model.decode(prefix, memory)
            prefix = torch.cat([prefix, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        synchronize(device)
        rows.append({"length": length, "cached_ms": 1000 * cached,
                     "recomputed_ms": 1000 * (time.perf_counter() - started) / length})
    return rows[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the Multi30k folder")
    parser.add_argument("--model", help="a trained Multi30k en-de Transformer folder, for the decoding rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to measure (default: cpu)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per row")
    parser.add_argument("--decode-only", action="store_true", help="skip the training rows (needs --model)")
    parser.add_argument("--batch1-sentences", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3,
                        help="decoding: the engines take this many turns at each setting; medians are reported")
    parser.add_argument("--joey-workdir", type=Path, help="folder of a finished benchmarks/peers/joeynmt.py run; "
                        "adds Joey NMT's rows, decoding with that run's model")
    parser.add_argument("--joey-venv", type=Path, default=ROOT / "runs" / "peers" / "joeynmt-venv",
                        help="Joey NMT's virtual environment (joeynmt.py creates it when missing)")
    parser.add_argument("--joey-minutes", type=float, default=3.0, help="Joey NMT's training time for its tokens/s")
    parser.add_argument("--train-rounds", type=int, default=3,
                        help="with --joey-workdir: attend's and Joey NMT's training take this many turns; "
                             "medians are reported")
    parser.add_argument("--joey-sentences", type=int, default=1000,
                        help="test sentences Joey NMT decodes at batch 64 (it recomputes the prefix at every "
                             "step, so all 1,000 with beam 5 take many minutes on a CPU)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    if args.decode_only and not args.model:
        parser.error("--decode-only needs --model")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = pick_device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: PyTorch sees no GPU here")
        result = {"machine": f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}",
                  "bf16_instructions": torch.cuda.is_bf16_supported(),
                  "peak_fp32": matmul_gflops(torch.float32, 8192, 10, "cuda"),
                  "peak_bf16": matmul_gflops(torch.bfloat16, 8192, 10, "cuda")}
    else:
        result = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads, "
                             f"{torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}",
                  "bf16_instructions": cpu_has_bf16()}
        # a peak is a best case, and one timing here has read as low as 40.7 GFLOP/s where others gave 65-68
        result["peak_fp32"] = max(matmul_gflops(torch.float32, 1024, 5) for _ in range(5))
        result["peak_bf16"] = matmul_gflops(torch.bfloat16, 512, 1)
    print(f"machine: {result['machine']}; matmul peak fp32 {result['peak_fp32']:.1f} GFLOP/s, bf16 "
          f"{result['peak_bf16']:.1f} GFLOP/s (bf16 instructions: {result['bf16_instructions']})", flush=True)

    if not args.decode_only:
        training_rows(args, result, device)
    if args.model:
        decode_rows(args, result)
    if args.joey_workdir and device.type == "cpu":
        joey_rows(args, result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print_tables(result, args)


def training_rows(args, result: dict, device: torch.device) -> None:
    """Training tokens/s, FLOP/s and MFU per precision, and tokens/s as the batch grows."""
    config = load_config(ROOT / "configs" / "multi30k-en-de-transformer.yaml")
    config.data.data_dir = str(Path(args.data).resolve())
    data = prepare(config)
    vocab = len(data.src_vocab), len(data.tgt_vocab)
    result["training"] = {}
    precisions = ["fp32", "bf16"] if result["bf16_instructions"] else ["fp32"]
    race = bool(args.joey_workdir) and device.type == "cpu"  # Joey NMT trains on the CPU here
    for precision in precisions:
        rounds = []
        for _ in range(args.train_rounds if race and precision == "fp32" else 1):
            model = build_model(config.model, *vocab).train()
            rounds.append(train_speed(model, data, config.train.batch_tokens, precision, args.steps, device))
            if race and precision == "fp32":  # Joey NMT's turn: the two are compared round by round
                if not joey_train_round(args, result):
                    race = False
        row = median_round(rounds, "tokens_per_s")
        row["rounds_tokens_per_s"] = [r["tokens_per_s"] for r in rounds]
        row["mfu"] = row["gflops"] / result[f"peak_{precision}"]
        row["peak_rss_mb"] = peak_rss_mb()
        result["training"][precision] = row
        print(f"training {precision}: {row['tokens_per_s']:,.0f} tokens/s, {row['gflops']:.1f} GFLOP/s, "
              f"MFU {row['mfu']:.0%}, padding {row['padding']:.1%}"
              + (f", peak GPU memory {row['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in row else ""), flush=True)
    result["batch_growth"] = []
    growth_precision = result["growth_precision"] = "bf16" if device.type == "cuda" else "fp32"
    sizes = (1024, 2048, 4096, 8192) + ((16384, 32768) if device.type == "cuda" else ())
    for batch_tokens in sizes:
        model = build_model(config.model, *vocab).train()
        row = train_speed(model, data, batch_tokens, growth_precision, max(3, args.steps // 2), device)
        result["batch_growth"].append({"batch_tokens": batch_tokens, **row})
        print(f"batch {batch_tokens}: {row['tokens_per_s']:,.0f} tokens/s", flush=True)


def median_round(rounds: list[dict], key: str) -> dict:
    """The round whose `key` is the median (the upper one of an even count)."""
    return sorted(rounds, key=lambda r: r[key])[len(rounds) // 2]


def make_engine(engine: tuple, threads: int):
    """(options, batch size) -> translator, for an engine named by a picklable tuple:
    ("attend", model folder, int8, device) or ("ctranslate2", exported folder, compute type)."""
    if engine[0] == "attend":
        _, folder, int8, device = engine
        loaded = load_model(folder)
        return lambda options, batch: Translator(loaded, options, batch, device=device, int8=int8)
    from attend.export import CTranslate2Translator

    _, folder, compute_type = engine
    return lambda options, batch: CTranslate2Translator(folder, options, batch, compute_type=compute_type,
                                                        threads=threads)


def engine_process(connection, engine: tuple, threads: int, lines: list[str], refs: list[str]) -> None:
    """Serves decoding measurements of one engine in a process of its own, as a user would run it: two
    engines in one process slow each other (each of PyTorch and CTranslate2 brings its own OpenMP
    runtime; with more threads than cores, their idle threads stop spinning early and every parallel
    section then waits for them to wake: attend's greedy batch-1 speed fell 10-15% with CTranslate2
    loaded beside it). Requests: (beam, batch size, sentences, with BLEU); None ends it."""
    torch.set_num_threads(threads)
    make, translators = make_engine(engine, threads), {}
    while (request := connection.recv()) is not None:
        beam, batch, count, with_refs = request
        if (beam, batch) not in translators:
            translators[beam, batch] = make(SearchOptions(beam_size=beam), batch)
        row = decode_speed(translators[beam, batch], lines[:count], refs[:count] if with_refs else None)
        connection.send({**row, "peak_rss_mb": peak_rss_mb()})


def decode_rows(args, result: dict) -> None:
    """Every engine's decoding speed, each engine in a process of its own. The engines take turns,
    round after round, each setting measured --rounds times and its median kept: this machine's speed
    drifts by 10-20% over tens of seconds, so engines measured one after the other would be compared
    at different speeds."""
    loaded = load_model(args.model)
    lines = read_lines(Path(args.data) / "test_2016_flickr.en.gz")
    refs = read_lines(Path(args.data) / "test_2016_flickr.de.gz")
    engines = {"attend fp32": ("attend", args.model, False, args.device)}
    if args.device == "cpu":  # dynamic int8 and the CTranslate2 rows are CPU inference paths
        engines["attend int8"] = ("attend", args.model, True, "cpu")
        add_ctranslate2(loaded, engines)
    spawn = multiprocessing.get_context("spawn")
    workers = {}
    for name, engine in engines.items():
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=engine_process, args=(theirs, engine, args.threads, lines, refs), daemon=True)
        process.start()
        workers[name] = (ours, process)
    result["decoding"] = {name: {} for name in engines}
    result["decoding_rounds"] = args.rounds
    try:
        for beam in (1, 5):
            for batch, count in ((1, args.batch1_sentences), (64, len(lines))):
                runs = {name: [] for name in engines}
                for turn in range(args.rounds):
                    for name, (connection, _) in workers.items():
                        time.sleep(0.5)  # the engine before may leave its threads spinning for a while
                        connection.send((beam, batch, count, batch == 64 and turn == 0))  # the same outputs each round
                        runs[name].append(connection.recv())
                setting = f"beam{beam}_batch{batch}"
                for name, rows in runs.items():
                    row = median_round(rows, "sentences_per_s")
                    result["decoding"][name][setting] = {
                        **row, "bleu": rows[0].get("bleu"), "rounds_sentences_per_s": [r["sentences_per_s"] for r in rows]}
                    result["decoding"][name]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rows)
                print(f"{setting}: " + "; ".join(f"{name} {result['decoding'][name][setting]['sentences_per_s']:.1f}"
                                                 for name in runs) + " sent/s (median of rounds)", flush=True)
    finally:
        for connection, process in workers.values():
            connection.send(None)
            process.join(timeout=30)
    if args.device == "cpu":
        result["output_layer"] = output_layer_cost(loaded.model.out)
    # cost per token does not depend on the weights: the same architecture with room for 200-token outputs
    config = loaded.config.model
    config.max_positions = 256
    model = build_model(config, len(loaded.src_vocab), len(loaded.tgt_vocab)).eval()
    result["per_token"] = per_token_cost(model, torch.device(args.device))


def output_layer_cost(layer, rows=(1, 5, 64, 128, 320), repeats: int = 7) -> list[dict]:
    """Microseconds per product of the output layer in the layouts of `attend.models.inference_linear`
    (nn.Linear's own, an (in, out) copy, oneDNN's reordered weight, and for one row one block of columns
    per thread), for as many rows as greedy and beam-5
    decoding send at batch 1 and batch 64 (the best of `repeats`)."""
    def best_us(fn, n):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - started) / n * 1e6)
        return min(times)

    out = []
    with torch.no_grad():
        transposed = layer.weight.t().contiguous()  # (hidden, vocab)
        packed = onednn_reorder(layer.weight) if onednn_available() else None
        for count in rows:
            x = torch.randn(count, layer.in_features)
            n = max(3, 2000 // count)
            row = {"rows": count, "linear_us": best_us(lambda: F.linear(x, layer.weight, layer.bias), n),
                   "transposed_us": best_us(lambda: torch.addmm(layer.bias, x, transposed), n)}
            if packed is not None:
                row["onednn_us"] = best_us(lambda: onednn_linear(x, packed, layer.bias), n)
            if count == 1 and torch.get_num_threads() > 1:
                blocks = PreparedWeight(layer.weight, layer.bias)
                row["blocks_us"] = best_us(lambda: blocks._one_row_in_blocks(x, torch.get_num_threads()), n)
            out.append(row)
    return out


def run_joey(args, what: str, extra: list) -> dict | None:
    """One benchmarks/peers/joeynmt.py run on this machine's threads: its JSON, or None (said why) if it failed."""
    script = ROOT / "benchmarks" / "peers" / "joeynmt.py"
    common = [sys.executable, str(script), "--venv", str(args.joey_venv), "--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "joey.json"
        done = subprocess.run(common + extra + ["--json", str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            print(f"Joey NMT {what} failed: {done.stdout.strip().splitlines()[-1:]}", flush=True)
            return None
        return json.loads(out.read_text())


def joey_train_round(args, result: dict) -> bool:
    """Joey NMT's training tokens/s over --joey-minutes on the same data, kept as one more round; its
    median round is its row."""
    row = run_joey(args, "training", ["--data", args.data, "--minutes", str(args.joey_minutes),
                                      "--eval-every", "100000", "--log-every", "10",  # a short run must log its steps
                                      "--no-decode"])
    if row is None:
        return False
    rounds = result.setdefault("joey", {}).setdefault("train_rounds", [])
    rounds.append(row)
    result["joey"]["train"] = median_round(rounds, "tokens_per_s_src_tgt")
    print(f"Joey NMT training: {row['tokens_per_s_src_tgt']:,.0f} tokens/s (src+tgt)", flush=True)
    return True


def joey_rows(args, result: dict) -> None:
    """Joey NMT 2.3 on the same machine and threads: decoding at batch 64 and 1 (and its training tokens/s,
    unless the training rows measured it in turns with attend's)."""
    if "train" not in result.get("joey", {}) and not joey_train_round(args, result):
        return
    joey = result["joey"]
    for name, batch, limit in (("batch64", 64, args.joey_sentences), ("batch1", 1, args.batch1_sentences)):
        row = run_joey(args, f"decoding at batch {batch}",
                       ["--decode-only", "--workdir", str(args.joey_workdir), "--decode-batch-sentences", str(batch),
                        "--decode-limit", str(limit)])
        if row is None:
            return
        joey[name] = row
    print(f"Joey NMT: greedy {joey['batch64']['sentences_per_s_greedy']:.1f} sent/s, beam 5 "
          f"{joey['batch64']['sentences_per_s_beam5']:.1f} sent/s (batch 64)", flush=True)


def add_ctranslate2(loaded, engines: dict) -> None:
    """CTranslate2 fp32 and int8 engines of the same model, exported here, when the package is installed."""
    try:
        from attend.export import export_ctranslate2

        folders = {}
        for quantization in (None, "int8"):
            folder = Path(tempfile.mkdtemp()) / "ct2"
            folders[quantization] = export_ctranslate2(loaded, folder, quantization)
        engines["CTranslate2 fp32"] = ("ctranslate2", str(folders[None]), "default")
        engines["CTranslate2 int8"] = ("ctranslate2", str(folders["int8"]), "int8")
    except ImportError as e:
        print(f"CTranslate2 rows skipped: {e}")


def _listed(numbers, form: str) -> str:
    return " ".join(format(x, form) for x in numbers)


def print_tables(result: dict, args) -> None:
    print(f"\n{result['machine']}; fp32 matmul peak {result['peak_fp32']:.1f} GFLOP/s, bf16 {result['peak_bf16']:.1f}\n")
    print("| system | training tokens/s (src+tgt) | GFLOP/s | MFU | greedy sent/s (b1 / b64) | beam 5 sent/s "
          "(b1 / b64) | greedy tokens/s b64 | BLEU greedy / beam 5 | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    train = result.get("training", {})
    decoding = result.get("decoding", {})
    for name in ("attend fp32", "attend bf16", "attend int8", "CTranslate2 fp32", "CTranslate2 int8"):
        t = train.get(name.split()[-1]) if name.startswith("attend") and name != "attend int8" else None
        d = decoding.get(name)
        if t is None and d is None:
            if name == "attend bf16" and train:
                print(f"| attend bf16 | not run: no bf16 instructions (bf16 matmul {result['peak_bf16']:.1f} GFLOP/s) "
                      "| | | | | | | |")
            continue
        cells = [f"{t['tokens_per_s']:,.0f}", f"{t['gflops']:.1f}", f"{t['mfu']:.0%}"] if t else ["-", "-", "-"]
        if d:
            cells += [f"{d['beam1_batch1']['sentences_per_s']:.1f} / {d['beam1_batch64']['sentences_per_s']:.1f}",
                      f"{d['beam5_batch1']['sentences_per_s']:.1f} / {d['beam5_batch64']['sentences_per_s']:.1f}",
                      f"{d['beam1_batch64']['tokens_per_s']:,.0f}",
                      f"{d['beam1_batch64']['bleu']:.2f} / {d['beam5_batch64']['bleu']:.2f}"]
        else:
            cells += ["-", "-", "-", "-"]
        rss = " / ".join(f"{x['peak_rss_mb']:,.0f} MB {what}" for x, what in ((t, "training"), (d, "decoding")) if x)
        print(f"| {name} | " + " | ".join(cells) + f" | {rss} |")
    if "batch1" in result.get("joey", {}):
        train, b64, b1 = (result["joey"][k] for k in ("train", "batch64", "batch1"))
        rss = max(train["peak_rss_mib"], b64["decode_peak_rss_mib"], b1["decode_peak_rss_mib"]) * 2**20 / 1e6
        print(f"| Joey NMT 2.3 | {train['tokens_per_s_src_tgt']:,.0f} | - | - | {b1['sentences_per_s_greedy']:.1f} / "
              f"{b64['sentences_per_s_greedy']:.1f} | {b1['sentences_per_s_beam5']:.1f} / "
              f"{b64['sentences_per_s_beam5']:.1f} | - | {b64['bleu_greedy']:.2f} / {b64['bleu_beam5']:.2f}"
              + (f" (first {b64['test_sentences']})" if b64["test_sentences"] < 1000 else "") + f" | {rss:,.0f} MB |")
    ours, theirs = decoding.get("attend fp32"), decoding.get("CTranslate2 fp32")
    if ours and theirs:
        print(f"\nCTranslate2 fp32 sentences/s over attend fp32's, round by round ({result['decoding_rounds']} rounds)\n\n"
              "| setting | each round | median |\n|---|---|---:|")
        for setting, label in (("beam1_batch1", "greedy, batch 1"), ("beam5_batch1", "beam 5, batch 1"),
                               ("beam1_batch64", "greedy, batch 64"), ("beam5_batch64", "beam 5, batch 64")):
            ratios = [c / a for a, c in zip(ours[setting]["rounds_sentences_per_s"],
                                            theirs[setting]["rounds_sentences_per_s"])]
            print(f"| {label} | {_listed(ratios, '.2f')} | {statistics.median_low(ratios):.2f} |")
    ours, theirs = result.get("training", {}).get("fp32", {}), result.get("joey", {}).get("train_rounds", [])
    if len(theirs) > 1 and len(ours.get("rounds_tokens_per_s", [])) == len(theirs):
        attend_rounds = ours["rounds_tokens_per_s"]
        joey_rounds = [j["tokens_per_s_src_tgt"] for j in theirs]
        ratios = [a / j for a, j in zip(attend_rounds, joey_rounds)]
        print(f"\nattend fp32 training tokens/s over Joey NMT's, round by round ({len(ratios)} rounds; attend "
              f"{_listed(attend_rounds, ',.0f')}, Joey NMT {_listed(joey_rounds, ',.0f')})\n\n"
              f"| each round | median |\n|---|---:|\n| {_listed(ratios, '.2f')} | {statistics.median_low(ratios):.2f} |")
    print(f"\ntraining tokens/s as the batch grows ({result.get('growth_precision', 'fp32')})\n\n"
          "| batch tokens | tokens/s | padding |\n|---:|---:|---:|")
    for r in result.get("batch_growth", []):
        print(f"| {r['batch_tokens']} | {r['tokens_per_s']:,.0f} | {r['padding']:.1%} |")
    if "output_layer" in result:
        print("\noutput layer, microseconds per product (nn.Linear's (vocab, hidden) weight, a (hidden, vocab) "
              "copy, oneDNN's reordered weight, one block of columns per thread)\n\n| rows | nn.Linear | "
              "(hidden, vocab) copy | oneDNN | thread blocks |\n|---:|---:|---:|---:|---:|")
        for r in result["output_layer"]:
            onednn = f"{r['onednn_us']:,.0f}" if "onednn_us" in r else "not available"
            blocks = f"{r['blocks_us']:,.0f}" if "blocks_us" in r else "-"
            print(f"| {r['rows']} | {r['linear_us']:,.0f} | {r['transposed_us']:,.0f} | {onednn} | {blocks} |")
    if "per_token" in result:
        print("\ndecoding cost per output token, batch 1 (ms)\n\n| output length | key/value cache | "
              "recomputing the prefix |\n|---:|---:|---:|")
        for r in result["per_token"]:
            print(f"| {r['length']} | {r['cached_ms']:.2f} | {r['recomputed_ms']:.2f} |")


if __name__ == "__main__":
    main()
