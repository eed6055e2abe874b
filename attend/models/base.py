"""The one interface every model family offers, and the helpers search relies on.

Training, search, evaluation and (later) pictures talk to a model only through:

    encode(src, src_mask)           -> memory
    decode(tgt_in, memory)          -> logits (batch, tgt_len, vocab), attention
    init_state(memory)              -> state
    step(prev_token, state, memory) -> logits (batch, vocab), state, attention

`memory` and `state` are dicts of tensors with the batch first, so search can
reorder beams or drop finished sentences with `select_rows`, whatever the family.
A search that keeps its rows may take `stepper(memory)`, `step` bound to that
memory, where a family checks once what `step` checks at every call.

Attention, when asked for with `return_attention=True`, always has the shape
(batch, layers, heads, tgt_len, src_len) from `decode` and
(batch, layers, heads, src_len) from `step`: an RNN with attention has one
layer and one head; a Transformer gives every decoder layer's cross-attention;
the RNN without attention has none and returns None.

`memory["states"]` is always the encoder's output (batch, src_len, d), and
`attention_maps` gives every attention map of one teacher-forced pass by name,
for pictures: "cross" always (when the family attends), "encoder" and
"decoder" self-attention where the family has them.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from attend.models.inference_linear import forget_prepared

Tensors = dict[str, torch.Tensor]


class Seq2Seq(nn.Module):
    """Base class: an encoder-decoder behind the four calls above."""

    has_attention = True

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Tensors:
        raise NotImplementedError

    def decode(self, tgt_in: torch.Tensor, memory: Tensors, return_attention: bool = False):
        raise NotImplementedError

    def init_state(self, memory: Tensors) -> Tensors:
        raise NotImplementedError

    def step(self, prev_token: torch.Tensor, state: Tensors, memory: Tensors, return_attention: bool = False):
        raise NotImplementedError

    def stepper(self, memory: Tensors) -> Callable[[torch.Tensor, Tensors], tuple]:
        """`step` without attention, bound to one memory for a search that keeps its rows (no
        `select_rows`): (prev_token, state) -> logits, state, None. A family may check once here
        what `step` checks at every call."""
        return functools.partial(self.step, memory=memory)

    def attention_maps(self, src, src_mask, tgt_in) -> tuple[torch.Tensor, Tensors]:
        """Teacher-forced logits and {name: (batch, layers, heads, queries, keys)} attention maps."""
        logits, cross = self.decode(tgt_in, self.encode(src, src_mask), return_attention=True)
        return logits, ({"cross": cross} if cross is not None else {})

    def train(self, mode: bool = True) -> "Seq2Seq":
        """Switch mode. Entering or leaving training forgets the weights prepared for inference,
        since training may change weights without counting versions (`inference_linear`); an
        eval() on a model already in evaluation mode, as each translate call makes, keeps them."""
        if mode or any(module.training for module in self.modules()):
            forget_prepared(self)
        return super().train(mode)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, tgt_len, vocab), the training path."""
        logits, _ = self.decode(tgt_in, self.encode(src, src_mask))
        return logits


def select_rows(tensors: Tensors, index: torch.Tensor) -> Tensors:
    """Keep (or repeat, or reorder) batch rows of every tensor: beams, dropped sentences."""
    return {name: t.index_select(0, index) for name, t in tensors.items()}

