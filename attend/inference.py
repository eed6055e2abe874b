"""Raw text in, raw text out: tokenize, batch by length, search, detokenize, restore order.

Used by `attend translate`, `attend evaluate`, validation during training and
the quickstart, so every path decodes the same way.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import torch

from attend.checkpoint import LoadedModel
from attend.config import MAX_SEED, sequence_limit
from attend.data.batching import encode_source, pad
from attend.data.vocab import PAD_ID, UNK_ID
from attend.device import pick_device
from attend.errors import AttendError
from attend.search import beam_search, greedy, output_limits, sample, valid_alpha


@dataclass
class Output:
    text: str
    score: float
    tokens: list[str]


@dataclass
class SearchOptions:
    beam_size: int = 1
    nbest: int = 1
    alpha: float = 0.0  # length penalty
    max_len_ratio: float = 2.0
    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: Optional[int] = None
    truncate: bool = False  # cut inputs longer than the model takes (with a warning) instead of refusing them

    def check(self) -> None:
        if self.beam_size < 1 or self.nbest < 1:
            raise AttendError("--beam and --nbest must be at least 1")
        if not valid_alpha(self.alpha):
            raise AttendError(f"--alpha must be a number from 0 up, got {self.alpha:g}")
        if not 0.0 < self.top_p <= 1.0 or self.top_k < 0 or not 0.0 < self.temperature < math.inf:
            raise AttendError("sampling needs --temperature > 0, --top-k >= 0 and 0 < --top-p <= 1")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise AttendError(f"--seed must be from 0 to 2**63 - 1, got {self.seed}")
        if self.nbest > self.beam_size and not self.sample:
            self.beam_size = self.nbest  # n-best needs at least n beams


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with every Linear (and RNN) layer's weights in int8, activations quantized on the fly.

    PyTorch's dynamic quantization: about 4x smaller matmul weights and faster
    CPU matmuls, at a small cost in accuracy (measured in benchmarks/speed.py).
    The eager torch.ao API is deprecated in favour of torchao but still the one
    that ships with PyTorch, so its warnings are silenced here.
    """
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(),
                                                      {torch.nn.Linear, torch.nn.GRU, torch.nn.LSTM}, dtype=torch.qint8)


def empty_outputs(options: SearchOptions) -> list[Output]:
    """What an empty input line gets: an empty output, as many times as the n-best list has rows, so that a
    reader of INDEX<TAB>SCORE<TAB>TEXT lines finds n rows for every input."""
    return [Output("", 0.0, []) for _ in range(options.nbest)]


class UnseenInputs:
    """Counts the input lines that hold tokens the vocabulary lacks (a model reads them as <unk>), so that one
    note at the end tells the user why such outputs may be poor, and where the first such line is."""

    def __init__(self, tokenizer_kind: str):
        self.lines, self.first = 0, None
        self.what = "words" if tokenizer_kind == "word" else "characters"  # what a subword model lacks is a character

    def check(self, ids: list[int], source: str, number: int) -> None:
        """`ids`: input line `number` as the vocabulary encoded it."""
        if UNK_ID in ids:
            self.lines += 1
            self.first = self.first or f"{source}:{number}"

    def note(self) -> str | None:
        if not self.lines:
            return None
        return (f"note: {self.lines:,} input line{'s' * (self.lines > 1)} held {self.what} the model never saw in "
                f"training, read as <unk> (the first at {self.first}); their outputs may be poor")


def check_length(tokens: list[str], limit: int, source: str, number: int, truncate: bool = False) -> list[str]:
    """The tokens of input line `number`, or a one-line error when they exceed the model's positions; with
    `truncate`, the tokens that fit and a warning on stderr instead."""
    if len(tokens) + 1 > limit and truncate:
        print(f"attend: warning: {source}:{number}: input has {len(tokens)} tokens, cut to the first "
              f"{limit - 1} this model takes", file=sys.stderr)
        return tokens[:limit - 1]
    if len(tokens) + 1 > limit:
        raise AttendError(f"{source}:{number}: input has {len(tokens)} tokens, more than this model takes "
                          f"({limit - 1}); split the line, or train a model that takes longer ones "
                          "(model.max_positions, and data.max_len for learned positions), or cut it with "
                          "'attend translate --truncate'")
    return tokens


def translate_in_chunks(translate: Callable, lines: Iterable[str], source: str, chunk_lines: int,
                        progress: Optional[Callable[[int], None]]) -> Iterator[list[Output]]:
    """`translate(block, source, first_line=..., on_lines=progress)` over `lines` a block of `chunk_lines` at a
    time, outputs in input order; `progress(n)` hears of every n lines done, batch by batch. Any engine can
    stream so.

    When `lines` has a `waiting()` method (`StreamLines`), a block is also decoded as soon as no further
    line is there to read, so interactive input is answered line by line."""
    block, first = [], 1
    waiting = getattr(lines, "waiting", None)
    for line in lines:
        block.append(line)
        if len(block) == chunk_lines or (waiting is not None and not waiting()):
            yield from translate(block, source, first_line=first, on_lines=progress)
            first += len(block)
            block = []
    if block:
        yield from translate(block, source, first_line=first, on_lines=progress)


class Translator:
    """Decodes lists of input strings with a model and its tokenizers."""

    def __init__(self, loaded: LoadedModel, options: SearchOptions | None = None, batch_size: int = 64,
                 device: str | None = None, int8: bool = False):
        self.loaded, self.options, self.batch_size = loaded, options or SearchOptions(), batch_size
        self.options.check()
        if batch_size < 1:
            raise AttendError(f"--batch-size must be at least 1, got {batch_size}")
        self.device = pick_device(device)
        self.model = loaded.model
        if int8:
            if self.device.type != "cpu":
                raise AttendError("--int8 quantizes for the CPU; leave it out on a GPU")
            self.model = quantize_int8(loaded.model)
        self.limit = sequence_limit(loaded.config)  # longest input (and output) in tokens
        self.unseen = UnseenInputs(loaded.src_tokenizer.kind)

    def encode_inputs(self, lines: list[str], source: str, first_line: int = 1) -> list[list[int]]:
        ids = []
        for number, line in enumerate(lines, first_line):
            tokens = check_length(self.loaded.src_tokenizer.encode(line), self.limit, source, number,
                                  self.options.truncate)
            ids.append(encode_source(tokens, self.loaded.src_vocab) if tokens else [])
            self.unseen.check(ids[-1], source, number)
        return ids

    def translate_stream(self, lines: Iterable[str], source: str = "input", chunk_lines: int = 10000,
                         progress: Optional[Callable[[int], None]] = None) -> Iterator[list[Output]]:
        """n-best outputs line by line for an input of any size: read, sorted and decoded a chunk at a time."""
        return translate_in_chunks(self.translate, lines, source, chunk_lines, progress)

    @torch.inference_mode()
    def translate(self, lines: list[str], source: str = "input", progress: bool | str = False,
                  first_line: int = 1, on_lines: Optional[Callable[[int], None]] = None) -> list[list[Output]]:
        """n-best outputs per input line, in input order; an empty line gets empty outputs. `progress`: a
        bar over the batches, labelled with it when it is a string; `on_lines(n)` hears of each n lines done."""
        model = self.model.to(self.device).eval()
        ids = self.encode_inputs(lines, source, first_line)
        results: list[list[Output]] = [empty_outputs(self.options) for _ in lines]
        order = sorted((i for i in range(len(lines)) if ids[i]), key=lambda i: len(ids[i]))
        if on_lines is not None and len(order) < len(lines):
            on_lines(len(lines) - len(order))  # the empty lines, done already
        chunks = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=progress if isinstance(progress, str) else "translating", unit="batch",
                          leave=False)
        for chunk in chunks:
            src = pad([ids[i] for i in chunk]).to(self.device)
            line_numbers = [first_line + i for i in chunk]
            for i, hyps in zip(chunk, self._search(model, src, src != PAD_ID, line_numbers)):
                results[i] = [self._output(h) for h in hyps]
            if on_lines is not None:
                on_lines(len(chunk))
        return results

    def _search(self, model, src, src_mask, line_numbers):
        o = self.options
        max_len = output_limits(src_mask, o.max_len_ratio, cap=self.limit)  # (batch,): per sentence
        if o.sample:  # nbest samples per line, each drawn on its own
            draws = [sample(model, src, src_mask, max_len, o.temperature, o.top_k, o.top_p,
                            self._generators(line_numbers, draw)) for draw in range(o.nbest)]
            return [[hyps[0] for hyps in per_draw] for per_draw in zip(*draws)]
        if o.beam_size == 1:
            return greedy(model, src, src_mask, max_len)
        return beam_search(model, src, src_mask, max_len, o.beam_size, o.alpha, o.nbest)

    def _generators(self, line_numbers: list[int], draw: int) -> list[torch.Generator] | None:
        """A random stream per input line and draw when seeded, so a seeded sample is the same whatever
        the batch; None (PyTorch's global generator) when not."""
        if self.options.seed is None:
            return None
        return [torch.Generator(device=self.device).manual_seed(
                    (self.options.seed * 1_000_003 + n + draw * 1_000_000_007) % 2 ** 64) for n in line_numbers]

    def _output(self, hyp) -> Output:
        tokens = self.loaded.tgt_vocab.decode(hyp.tokens)
        return Output(self.loaded.tgt_tokenizer.decode(tokens), hyp.score, tokens)

    def best(self, lines: list[str], source: str = "input", progress: bool | str = False) -> list[str]:
        """The top output text per line; `progress` shows a bar, labelled with it when it is a string."""
        return [outs[0].text for outs in self.translate(lines, source, progress)]
