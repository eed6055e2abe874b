"""Greedy, beam and sampling search over the shared model interface.

All three are batched over sentences and call only `encode`, `init_state` and
`step`, so they work for every family. Finished sentences leave the batch
(`select_rows` on memory and state), so a batch costs what its longest live
hypothesis costs. PAD and BOS are never generated; at the last allowed step
only </s> is, so every hypothesis ends properly. `max_len` is one int for the
whole batch or a (batch,) tensor of limits, one per sentence (`output_limits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from attend.data.vocab import BOS_ID, EOS_ID, PAD_ID
from attend.models.base import Seq2Seq, select_rows


@dataclass
class Hypothesis:
    """One output: token ids without </s>, its score and (on request) attention."""

    tokens: list[int]
    score: float  # log-probability; divided by the length penalty in beam search
    attention: Optional[torch.Tensor] = None  # (out_len + 1, layers, heads, src_len), </s> step included


def output_limits(src_mask: torch.Tensor, ratio: float = 2.0, extra: int = 10, cap: int = 512) -> torch.Tensor:
    """A generous bound on each sentence's output length, ratio * its source length + extra: (batch,).

    Per sentence, so an output never depends on which other sentences share its batch.
    """
    return (ratio * src_mask.sum(1).float()).long().add(extra).clamp(max=cap).cpu()


def max_output_length(src_mask: torch.Tensor, ratio: float = 2.0, extra: int = 10, cap: int = 512) -> int:
    """The longest of the batch's output limits."""
    return int(output_limits(src_mask, ratio, extra, cap).max())


def _limits(max_len, batch: int) -> torch.Tensor:
    """max_len as given (one int for all, or one per sentence) -> (batch,) long tensor on the CPU; at least 1,
    the step that gives </s>, so every sentence ends."""
    return torch.as_tensor(max_len, dtype=torch.long).cpu().expand(batch).clamp(min=1)


_NEVER: dict = {}  # device -> (PAD_ID, BOS_ID) as an index tensor, made once: a step costs one call


def _never_generated(device: torch.device) -> torch.Tensor:
    index = _NEVER.get(device)
    if index is None:
        index = _NEVER[device] = torch.tensor([PAD_ID, BOS_ID], device=device)
    return index


def _log_probs(logits: torch.Tensor, last_step: Optional[torch.Tensor]) -> torch.Tensor:
    """log-softmax with the tokens that may never appear (PAD, BOS) set to -inf; rows at their
    last allowed step (`last_step`, bool per row, or None when there are none) may only end."""
    logp = torch.log_softmax(logits.float(), dim=-1).index_fill_(1, _never_generated(logits.device), float("-inf"))
    if last_step is not None and bool(last_step.any()):
        rows = last_step.to(logp.device)
        eos = logp[:, EOS_ID].clone()
        logp[rows] = float("-inf")
        logp[:, EOS_ID] = eos
    return logp


def _at_last_step(limits: torch.Tensor, active: list[int], t: int, soonest: int,
                  repeat: int = 1) -> Optional[torch.Tensor]:
    """Which live rows (each repeated `repeat` times) are at their last allowed step t; None before
    `soonest`, the least limit among them, which saves the tensor calls on nearly every step."""
    if t < soonest - 1:
        return None
    last = limits[active] - 1 == t
    return last.repeat_interleave(repeat) if repeat > 1 else last


@torch.inference_mode()
def _single_path(model, src, src_mask, max_len, choose: Callable, return_attention: bool):
    """One hypothesis per sentence, each next token and its log-probability picked by `choose(logp, active)`,
    where `active` lists the sentence of each live row."""
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    batch = src.size(0)
    limits = _limits(max_len, batch)
    active = list(range(batch))  # sentence of each live row
    soonest = int(limits.min())
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens, scores = [[] for _ in range(batch)], [0.0] * batch
    attention = [[] for _ in range(batch)]
    for t in range(int(limits.max())):
        logits, state, weights = model.step(prev, state, memory, return_attention=return_attention)
        logp = _log_probs(logits, _at_last_step(limits, active, t, soonest))
        chosen_logp, chosen = choose(logp, active)  # (active,) each
        ended = []
        for row, (sentence, token, lp) in enumerate(zip(active, chosen.tolist(), chosen_logp.tolist())):
            scores[sentence] += lp
            if token == EOS_ID:
                ended.append(row)
            else:
                tokens[sentence].append(token)
            if weights is not None:
                attention[sentence].append(weights[row])
        if len(ended) == len(active):
            break
        if ended:
            keep_rows = [row for row in range(len(active)) if row not in ended]
            active = [active[r] for r in keep_rows]
            soonest = int(limits[active].min())
            keep = torch.tensor(keep_rows, device=src.device)
            chosen = chosen[keep]
            memory, state = select_rows(memory, keep), select_rows(state, keep)
        prev = chosen
    return [
        [Hypothesis(tokens[i], scores[i], torch.stack(attention[i]) if attention[i] else None)]
        for i in range(batch)
    ]


def greedy(model: Seq2Seq, src, src_mask, max_len, return_attention: bool = False) -> list[list[Hypothesis]]:
    """The most probable next token at every step."""
    if src.size(0) == 1 and not return_attention:
        return _greedy_one_sentence(model, src, src_mask, int(_limits(max_len, 1)[0]))
    return _single_path(model, src, src_mask, max_len, lambda logp, _: logp.max(-1), return_attention)


@torch.inference_mode()
def _greedy_one_sentence(model, src, src_mask, limit: int) -> list[list[Hypothesis]]:
    """`_single_path`'s greedy search for one sentence in fewer calls per step, which is most of what a
    step costs besides the model's at batch 1: a step picks the largest logit (the token the
    log-probabilities would pick), and the log-probabilities of the picks are taken once, at the end,
    over all steps together (on the Multi30k Transformer a log-softmax over its 8,001 tokens took 90 us
    per step, a third of the search's own time)."""
    memory = model.encode(src, src_mask)
    state, step = model.init_state(memory), model.stepper(memory)
    prev = torch.full((1,), BOS_ID, dtype=torch.long, device=src.device)
    tokens, steps = [], []  # the tokens, the logits (1, vocab) of each step
    for t in range(limit):
        logits, state, _ = step(prev, state)
        steps.append(logits)
        if t == limit - 1:
            break  # the last allowed step: only </s>
        prev = logits.argmax(-1)  # (1,)
        token = int(prev)
        if token in (PAD_ID, BOS_ID):  # never generated: the best of the others
            prev = _log_probs(logits, None).argmax(-1)
            token = int(prev)
        if token == EOS_ID:
            break
        tokens.append(token)
    if not steps:
        return [[Hypothesis([], 0.0)]]
    picks = torch.tensor(tokens + [EOS_ID], device=src.device)[:, None]
    score = _log_probs(torch.cat(steps), None).gather(1, picks).sum()
    return [[Hypothesis(tokens, float(score))]]


def sample(model: Seq2Seq, src, src_mask, max_len, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, generators: Optional[list[torch.Generator]] = None) -> list[list[Hypothesis]]:
    """Ancestral sampling from the tempered, optionally top-k / nucleus-truncated distribution.

    With `generators`, one per sentence (on the model's device), each sentence draws from its own random
    stream (Gumbel-max: the argmax of log-probabilities plus Gumbel noise is a sample), so a seeded sample
    does not depend on which sentences share its batch. Without, PyTorch's global generator is used.
    Scores are the model's own log-probabilities of the sampled tokens.
    """

    def draw(scaled, active):  # (active, vocab) log-probabilities, tempered and truncated -> (active,) ids
        if generators is None:
            return torch.multinomial(torch.softmax(scaled, -1), 1)[:, 0]
        uniform = torch.stack([torch.rand(scaled.size(-1), generator=generators[s], device=scaled.device)
                               for s in active])  # (active, vocab)
        return (scaled - torch.log(-torch.log(uniform))).argmax(-1)

    def choose(logp, active):
        scaled = logp / max(temperature, 1e-6)
        if top_k > 0:
            kth = scaled.topk(min(top_k, scaled.size(-1)), dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        if top_p < 1.0:
            sorted_logp, order = scaled.sort(dim=-1, descending=True)
            mass_before = torch.softmax(sorted_logp, -1).cumsum(-1) - torch.softmax(sorted_logp, -1)
            sorted_logp = sorted_logp.masked_fill(mass_before > top_p, float("-inf"))
            scaled = torch.full_like(scaled, float("-inf")).scatter(1, order, sorted_logp)
        chosen = draw(scaled, active)  # (active,)
        return logp.gather(1, chosen[:, None])[:, 0], chosen

    return _single_path(model, src, src_mask, max_len, choose, False)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + length) / 6) ** alpha; alpha = 0 ranks by plain log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


def valid_alpha(alpha: float) -> bool:
    """Whether `alpha` is a length penalty: a number from 0 up (NaN would rank nothing, infinity everything)."""
    return 0.0 <= alpha < math.inf


@dataclass
class _BeamStep:
    """What one beam-search step keeps: per surviving beam (k per live sentence, in order) its score, its row
    of the previous step, its new token and its whole output so far; and the hypotheses that ended."""

    scores: list[float]
    parents: list[int]
    tokens: list[int]
    history: list[list[int]]
    ended: list[tuple[int, int, float]]  # (sentence, parent beam, score divided by the length penalty)


def _advance(top_scores: list[list[float]], top_index: list[list[int]], vocab: int, k: int, active: list[int],
             history: list[list[list[int]]], finished: list[list[Hypothesis]], penalty: float) -> _BeamStep:
    """The bookkeeping of a step on each live sentence's best 2k candidates (Python lists cost less here than
    the dozens of tiny tensor calls it would otherwise take): an ending among the top k is final and goes to
    `finished`, and the best k candidates that do not end carry on."""
    step = _BeamStep([], [], [], [], [])
    for row, (row_scores, row_index) in enumerate(zip(top_scores, top_index)):
        sentence, kept = active[row], 0
        for rank, (score, index) in enumerate(zip(row_scores, row_index)):
            parent, token = divmod(index, vocab)
            if token == EOS_ID:
                if rank < k and score > float("-inf"):
                    finished[sentence].append(Hypothesis(list(history[row][parent]), score / penalty))
                    step.ended.append((sentence, parent, score / penalty))
            elif kept < k:
                step.scores.append(score)
                step.parents.append(row * k + parent)
                step.tokens.append(token)
                step.history.append(history[row][parent] + [token])
                kept += 1
    return step


def _sentences_done(live_scores: list[float], k: int, active: list[int], finished: list[list[Hypothesis]],
                    nbest: int, alpha: float) -> list[bool]:
    """Per live sentence, whether its search is over. Without a length penalty scores only fall as outputs
    grow, so it is once no live beam can beat its nbest-th finished hypothesis; with one a longer output may
    still win, so it is at k finished hypotheses, as is usual."""
    if alpha != 0.0:
        return [len(finished[s]) >= k for s in active]
    return [len(finished[s]) >= nbest and max(live_scores[row * k:(row + 1) * k]) <=
            sorted(h.score for h in finished[s])[-nbest] for row, s in enumerate(active)]


@torch.inference_mode()
def beam_search(model: Seq2Seq, src, src_mask, max_len, beam_size: int = 5, alpha: float = 0.0,
                nbest: int = 1, on_step: Optional[Callable] = None) -> list[list[Hypothesis]]:
    """Batched beam search; returns the `nbest` best finished hypotheses per sentence (it searches with
    at least `nbest` beams).

    Each step scores beam_size * vocab continuations of every live sentence,
    keeps the best 2 * beam_size, sends those ending in </s> (among the top
    beam_size) to the finished list and the best beam_size others on. Without a
    length penalty a sentence is done once no live beam scores above its
    `nbest`-th finished hypothesis (log-probabilities only fall, so none can
    win later); with one, once it has beam_size finished hypotheses. Either
    way it stops at `max_len`.

    `on_step(t, sentences, beam, token, scores, ended)`, when given, sees every
    step's outcome for pictures of the search: the live sentences, the parent
    beam, new token and score of each surviving beam (each (len(sentences), k)),
    and the (sentence, parent beam, score) of hypotheses that ended with </s>, their scores divided by the
    length penalty as the final ranking has them (the live beams' are plain log-probabilities).
    """
    k, batch = max(beam_size, nbest), src.size(0)  # n finished hypotheses need at least n beams
    limits = _limits(max_len, batch)
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    beams = torch.arange(batch, device=src.device).repeat_interleave(k)  # sentence of each beam's row
    scores = torch.full((batch, k), float("-inf"), device=src.device)  # (sentences, beam)
    scores[:, 0] = 0.0  # one live beam at the start, so the first step has no duplicates
    history = [[[] for _ in range(k)] for _ in range(batch)]  # tokens so far, per live sentence and beam
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    active = list(range(batch))  # sentence of each live row
    soonest = int(limits.min())
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for t in range(int(limits.max())):
        logits, state, _ = model.step(prev, state, memory)
        if t == 0:  # all beams of a sentence start alike, so the first step took one row per sentence
            memory, state, logits = select_rows(memory, beams), select_rows(state, beams), logits[beams]
        logp = _log_probs(logits, _at_last_step(limits, active, t, soonest, repeat=k))
        n, vocab = len(active), logp.size(-1)
        candidates = (scores[:, :, None] + logp.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)

        step = _advance(top_scores.tolist(), top_index.tolist(), vocab, k, active, history, finished,
                        length_penalty(t + 1, alpha))
        scores = torch.tensor(step.scores, device=src.device).view(n, k)
        history = [step.history[row * k:(row + 1) * k] for row in range(n)]
        state = select_rows(state, torch.tensor(step.parents, device=src.device))
        if on_step is not None:
            beam = torch.tensor(step.parents).view(n, k) - torch.arange(n)[:, None] * k
            on_step(t, list(active), beam, torch.tensor(step.tokens).view(n, k), scores, step.ended)
        done = _sentences_done(step.scores, k, active, finished, nbest, alpha)
        if all(done):
            break
        prev = torch.tensor(step.tokens, device=src.device)
        if any(done):
            keep_rows = [row for row, d in enumerate(done) if not d]
            active, history = [active[r] for r in keep_rows], [history[r] for r in keep_rows]
            soonest = int(limits[active].min())
            keep = torch.tensor(keep_rows, device=src.device)
            beam_rows = (keep[:, None] * k + torch.arange(k, device=src.device)).view(-1)
            memory, state = select_rows(memory, beam_rows), select_rows(state, beam_rows)
            scores, prev = scores[keep], prev[beam_rows]
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]


__all__ = ["Hypothesis", "beam_search", "greedy", "length_penalty", "max_output_length", "output_limits", "sample"]
