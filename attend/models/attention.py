"""Attention for the RNN decoder: Luong's dot, general and concat scores, and Bahdanau's additive one.

Each scorer turns a decoder query h (batch, tgt_len, hidden) and the encoder
states s (batch, src_len, enc_hidden) into weights a = softmax(score(h, s)) and
a context c = sum_j a_j s_j. Whatever of the score depends on s alone is
computed once per sentence in `prepare_keys`, so a decoding step of dot or
general costs one matrix product against the keys (concat and Bahdanau add the
query's projection to every key and take tanh and v of the sum).
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """score(h, s) -> softmax over unmasked source positions -> weighted sum of s."""

    def prepare_keys(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query, keys, values, src_mask):
        """query (batch, tgt_len, hidden) -> context (batch, tgt_len, enc_hidden), weights (batch, tgt_len, src_len)."""
        scores = self.score(query, keys).masked_fill(~src_mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return weights @ values, weights


class DotAttention(Attention):
    """Luong dot: score = h . s (needs equal sizes)."""

    def score(self, query, keys):
        return query @ keys.transpose(1, 2)


class GeneralAttention(Attention):
    """Luong general: score = h . (W_a s)."""

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.w_a = nn.Linear(key_size, query_size, bias=False)

    def prepare_keys(self, states):
        return self.w_a(states)

    def score(self, query, keys):
        return query @ keys.transpose(1, 2)


class AdditiveAttention(Attention):
    """score = v . tanh(W_q h + W_k s): Luong's concat over h_t, Bahdanau's over h_{t-1}."""

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.w_q = nn.Linear(query_size, attention_size, bias=False)
        self.w_k = nn.Linear(key_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def prepare_keys(self, states):
        return self.w_k(states)

    def score(self, query, keys):
        # (batch, tgt_len, 1, att) + (batch, 1, src_len, att) -> (batch, tgt_len, src_len)
        return self.v(torch.tanh(self.w_q(query)[:, :, None, :] + keys[:, None, :, :])).squeeze(-1)


def build_attention(kind: str, query_size: int, key_size: int) -> Attention:
    if kind == "dot":
        if query_size != key_size:
            raise ValueError("dot attention needs equal decoder and encoder state sizes")
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, key_size)
    return AdditiveAttention(query_size, key_size, query_size)
