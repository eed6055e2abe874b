"""What a model did on one input, recorded for pictures: tokens, attention, alternatives, beams.

A trace runs the real search (greedy or beam) to choose the output, then one
teacher-forced pass over that output to collect every attention map and the
model's next-token distribution at each step. Both go through the shared model
interface only, so heatmaps, animations and pages work for every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from attend.checkpoint import LoadedModel
from attend.data.vocab import BOS, BOS_ID, EOS_ID, PAD_ID, UNK, UNK_ID
from attend.errors import AttendError
from attend.inference import Translator
from attend.models import count_parameters
from attend.search import beam_search, greedy, max_output_length


@dataclass
class BeamStep:
    """The beams alive after one search step, and the hypotheses that ended at it."""

    beams: list[dict]  # {"token": str, "parent": int, "score": float}, parent indexes the previous step's beams
    ended: list[dict]  # {"parent": int, "score": float}: a beam of the previous step that chose </s>, its
    # score divided by the length penalty (what ranks finished hypotheses), where live beams' are plain
    # log-probabilities


@dataclass
class Trace:
    label: str  # which model, for titles
    family: str
    source: str
    output: str
    src_tokens: list[str]  # as the tokenizer gave them (a word the vocabulary lacks stays itself), </s> last: S
    tgt_tokens: list[str]  # as the decoder emitted them, </s> last: T
    maps: dict[str, np.ndarray]  # "cross" (layers, heads, T, S); "encoder" (.., S, S); "decoder" (.., T, T)
    states: np.ndarray  # encoder output (S, d)
    alternatives: list[list[tuple[str, float]]]  # per step: top-k (token, probability) after the chosen prefix
    beam_steps: list[BeamStep] = field(default_factory=list)  # empty for greedy search
    beam_size: int = 1
    score: float = 0.0  # log-probability of the output
    forced_end: bool = False  # the output reached its length limit, where search allows only </s>

    @property
    def decoder_inputs(self) -> list[str]:
        """What the decoder read at each step, the keys of its self-attention: <s>, then each output but the last."""
        return [BOS] + self.tgt_tokens[:-1]

    @property
    def cross(self) -> np.ndarray | None:
        return self.maps.get("cross")

    @property
    def cross_average(self) -> np.ndarray | None:
        """Cross-attention averaged over layers and heads, (T, S): the one map of an RNN."""
        return self.cross.mean(axis=(0, 1)) if self.cross is not None else None

    def to_dict(self) -> dict:
        """Plain JSON-ready data, probabilities rounded to keep pages small."""
        return {
            "label": self.label, "family": self.family, "source": self.source, "output": self.output,
            "src_tokens": self.src_tokens, "tgt_tokens": self.tgt_tokens, "decoder_inputs": self.decoder_inputs,
            "maps": {name: np.round(m, 4).tolist() for name, m in self.maps.items()},
            "alternatives": [[[tok, round(p, 4)] for tok, p in step] for step in self.alternatives],
            "beam_size": self.beam_size,
            "beam_steps": [{"beams": s.beams, "ended": s.ended} for s in self.beam_steps],
            "score": round(self.score, 4), "forced_end": self.forced_end,
        }


@torch.no_grad()
def trace(loaded: LoadedModel, text: str, beam_size: int = 1, alpha: float = 0.0, top_k: int = 5,
          label: str | None = None, device: str | None = None) -> Trace:
    """Decode `text` with `loaded` and record everything the pictures show."""
    if not text.strip():
        raise AttendError("explain needs a non-empty input text")
    translator = Translator(loaded, device=device)
    ids = translator.encode_inputs([text], "input")[0]
    if not ids:
        raise AttendError(f"explain: {text!r} gives no tokens to this model's tokenizer; give a visible input")
    model = loaded.model.to(translator.device).eval()
    src = torch.tensor([ids], device=translator.device)  # (1, S)
    src_mask = torch.ones_like(src, dtype=torch.bool)
    max_len = max_output_length(src_mask, cap=translator.limit)

    itos = loaded.tgt_vocab.itos
    beam_steps: list[BeamStep] = []
    if beam_size > 1:
        def record(t, sentences, beam, token, scores, ended):
            beam_steps.append(BeamStep(
                [{"token": itos[int(w)], "parent": int(b), "score": round(float(s), 4)}
                 for b, w, s in zip(beam[0].tolist(), token[0].tolist(), scores[0].tolist()) if s > float("-inf")],
                [{"parent": b, "score": round(s, 4)} for _, b, s in ended]))

        best = beam_search(model, src, src_mask, max_len, beam_size, alpha, on_step=record)[0][0]
    else:
        best = greedy(model, src, src_mask, max_len)[0][0]

    out_ids = best.tokens + [EOS_ID]
    tgt_in = torch.tensor([[BOS_ID] + best.tokens], device=src.device)  # (1, T)
    logits, maps = model.attention_maps(src, src_mask, tgt_in)  # logits (1, T, vocab)
    logp = torch.log_softmax(logits[0].float(), dim=-1)
    never = torch.tensor([PAD_ID, BOS_ID], device=logp.device)  # search never emits these: not alternatives
    probs, top = logp.exp().index_fill(1, never, 0.0).topk(min(top_k, logp.size(-1) - 2), dim=-1)  # (T, k)
    alternatives = [[(itos[i], float(p)) for i, p in zip(ids_t.tolist(), p_t.tolist())] for ids_t, p_t in zip(top, probs)]
    tokens = loaded.tgt_vocab.decode(best.tokens)
    return Trace(
        label=label or (loaded.path.resolve().name if loaded.path else loaded.config.model.family),
        family=f"{loaded.config.model.family} ({count_parameters(model) / 1e6:.2f} M parameters)",
        source=text,
        output=loaded.tgt_tokenizer.decode(tokens),
        src_tokens=source_labels(loaded, text, ids),
        tgt_tokens=[itos[i] for i in out_ids],
        maps={name: m[0].float().cpu().numpy() for name, m in maps.items()},
        states=model.encode(src, src_mask)["states"][0].float().cpu().numpy(),
        alternatives=alternatives,
        beam_steps=beam_steps,
        beam_size=beam_size,
        score=float(logp.gather(1, torch.tensor(out_ids, device=src.device)[:, None]).sum()),
        forced_end=len(out_ids) == max_len and int(top[-1, 0]) != EOS_ID,
    )


def source_labels(loaded: LoadedModel, text: str, ids: list[int]) -> list[str]:
    """The encoder's input tokens, </s> last; one the vocabulary lacks shows both what it was and what the
    model saw: "zebra (<unk>)"."""
    itos = loaded.src_vocab.itos
    tokens = loaded.src_tokenizer.encode(text) + [itos[EOS_ID]]
    if len(tokens) != len(ids):
        return [itos[i] for i in ids]
    return [f"{token} ({UNK})" if i == UNK_ID and token != UNK else token for token, i in zip(tokens, ids)]
