"""Greedy, beam and sampling search over the shared model interface.

All three are batched over sentences and call only `encode`, `init_state` and
`step`, so they work for every family. Finished sentences leave the batch
(`select_rows` on memory and state), so a batch costs what its longest live
hypothesis costs. PAD and BOS are never generated; at the last allowed step
only </s> is, so every hypothesis ends properly. `max_len` is one int for the
whole batch or a (batch,) tensor of limits, one per sentence (`output_limits`).
"""

from __future__ import annotations

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
    """max_len as given (one int for all, or one per sentence) -> (batch,) long tensor on the CPU."""
    return torch.as_tensor(max_len, dtype=torch.long).cpu().expand(batch).clone()


def _log_probs(logits: torch.Tensor, last_step: torch.Tensor) -> torch.Tensor:
    """log-softmax with the tokens that may not appear here set to -inf; rows at their
    last allowed step (`last_step`, bool per row) may only end."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, PAD_ID] = logp[:, BOS_ID] = float("-inf")
    if bool(last_step.any()):
        rows = last_step.to(logp.device)
        eos = logp[:, EOS_ID].clone()
        logp[rows] = float("-inf")
        logp[:, EOS_ID] = eos
    return logp


@torch.no_grad()
def _single_path(model, src, src_mask, max_len, choose: Callable, return_attention: bool):
    """One hypothesis per sentence, each next token picked by `choose(logp)`."""
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    batch = src.size(0)
    limits = _limits(max_len, batch)
    active = torch.arange(batch)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens, scores = [[] for _ in range(batch)], [0.0] * batch
    attention = [[] for _ in range(batch)]
    for t in range(int(limits.max())):
        logits, state, weights = model.step(prev, state, memory, return_attention=return_attention)
        logp = _log_probs(logits, limits[active] - 1 == t)
        chosen = choose(logp)  # (active,)
        chosen_logp = logp.gather(1, chosen[:, None])[:, 0]
        for row, (sentence, token, lp) in enumerate(zip(active.tolist(), chosen.tolist(), chosen_logp.tolist())):
            scores[sentence] += lp
            if token != EOS_ID:
                tokens[sentence].append(token)
            if weights is not None:
                attention[sentence].append(weights[row])
        done = chosen == EOS_ID
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero()[:, 0]
            active, chosen = active[keep.cpu()], chosen[keep]
            memory, state = select_rows(memory, keep), select_rows(state, keep)
        prev = chosen
    return [
        [Hypothesis(tokens[i], scores[i], torch.stack(attention[i]) if attention[i] else None)]
        for i in range(batch)
    ]


def greedy(model: Seq2Seq, src, src_mask, max_len, return_attention: bool = False) -> list[list[Hypothesis]]:
    """The most probable next token at every step."""
    return _single_path(model, src, src_mask, max_len, lambda logp: logp.argmax(-1), return_attention)


def sample(model: Seq2Seq, src, src_mask, max_len, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, generator: Optional[torch.Generator] = None) -> list[list[Hypothesis]]:
    """Ancestral sampling from the tempered, optionally top-k / nucleus-truncated distribution.

    Scores are the model's own log-probabilities of the sampled tokens.
    """

    def choose(logp):
        scaled = logp / max(temperature, 1e-6)
        if top_k > 0:
            kth = scaled.topk(min(top_k, scaled.size(-1)), dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        if top_p < 1.0:
            sorted_logp, order = scaled.sort(dim=-1, descending=True)
            mass_before = torch.softmax(sorted_logp, -1).cumsum(-1) - torch.softmax(sorted_logp, -1)
            sorted_logp = sorted_logp.masked_fill(mass_before > top_p, float("-inf"))
            scaled = torch.full_like(scaled, float("-inf")).scatter(1, order, sorted_logp)
        return torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator)[:, 0]

    return _single_path(model, src, src_mask, max_len, choose, False)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + length) / 6) ** alpha; alpha = 0 ranks by plain log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Seq2Seq, src, src_mask, max_len, beam_size: int = 5, alpha: float = 0.0,
                nbest: int = 1, on_step: Optional[Callable] = None) -> list[list[Hypothesis]]:
    """Batched beam search; returns the `nbest` best finished hypotheses per sentence.

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
    and the (sentence, parent beam, score) of hypotheses that ended with </s>.
    """
    k, batch = beam_size, src.size(0)
    limits = _limits(max_len, batch)
    memory = model.encode(src, src_mask)
    memory = select_rows(memory, torch.arange(batch, device=src.device).repeat_interleave(k))
    state = model.init_state(memory)
    scores = torch.full((batch, k), float("-inf"), device=src.device)  # (sentences, beam)
    scores[:, 0] = 0.0  # one live beam at the start, so the first step has no duplicates
    history = torch.empty(batch, k, 0, dtype=torch.long, device=src.device)  # (sentences, beam, t)
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=src.device)
    active = torch.arange(batch)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    rank = torch.arange(2 * k, device=src.device)
    for t in range(int(limits.max())):
        logits, state, _ = model.step(prev, state, memory)
        logp = _log_probs(logits, (limits[active] - 1 == t).repeat_interleave(k))
        n, vocab = len(active), logp.size(-1)
        candidates = (scores[:, :, None] + logp.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
        beam, token = top_index // vocab, top_index % vocab
        is_eos = token == EOS_ID

        sentences = active.tolist()
        ended = (is_eos & (rank[: top_index.size(1)] < k) & (top_scores > float("-inf"))).nonzero().tolist()
        ended_here = []
        for row, r in ended:
            words = history[row, beam[row, r]].tolist()
            score = top_scores[row, r].item() / length_penalty(t + 1, alpha)
            finished[sentences[row]].append(Hypothesis(words, score))
            ended_here.append((sentences[row], int(beam[row, r]), score))

        # the best k candidates that do not end here carry on
        order = (is_eos.long() * 2 * k + rank[: top_index.size(1)]).argsort(dim=1)[:, :k]
        scores, beam, token = top_scores.gather(1, order), beam.gather(1, order), token.gather(1, order)
        history = torch.cat([history.gather(1, beam[:, :, None].expand(-1, -1, history.size(2))), token[:, :, None]], dim=2)
        rows = (torch.arange(n, device=src.device)[:, None] * k + beam).view(-1)
        state = select_rows(state, rows)
        if on_step is not None:
            on_step(t, sentences, beam, token, scores, ended_here)

        if alpha == 0.0:
            # scores only fall as outputs grow, so a sentence is done once no live beam can beat its n-th best
            best_live = scores.max(dim=1).values.tolist()
            done = torch.tensor([len(finished[s]) >= nbest and
                                 best_live[row] <= sorted(h.score for h in finished[s])[-nbest]
                                 for row, s in enumerate(sentences)])
        else:  # with a length bonus a longer output may still win; stop at beam_size finished, as is usual
            done = torch.tensor([len(finished[s]) >= k for s in sentences])
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero()[:, 0]
            active = active[keep]
            keep = keep.to(src.device)
            beam_rows = (keep[:, None] * k + torch.arange(k, device=src.device)).view(-1)
            memory, state = select_rows(memory, beam_rows), select_rows(state, beam_rows)
            scores, history, token = scores[keep], history[keep], token[keep]
        prev = token.reshape(-1)
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]


__all__ = ["Hypothesis", "beam_search", "greedy", "length_penalty", "max_output_length", "output_limits", "sample"]
