"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Multi-head scaled dot-product attention, sinusoidal or learned positions,
pre-norm or post-norm residual blocks, encoder and decoder stacks. Decoding
steps keep a key/value cache per layer, so a step costs one token's work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attend.config import ModelConfig
from attend.data.vocab import PAD_ID
from attend.models.base import Seq2Seq, Tensors
from attend.models.dropout import Dropout, dropout
from attend.models.inference_linear import linear
from attend.models.transformer_inference import (fast_encode, fast_path_applies, fast_step,
                                                 forget_step_weights, step_weights)


class MultiHeadAttention(nn.Module):
    """softmax(Q K^T / sqrt(d_k)) V over `heads` subspaces, then an output projection.

    Uses the fused `scaled_dot_product_attention` unless the weights are asked
    for, or the weights are dropped out on a CPU (where SDPA draws the mask
    element by element; see `attend.models.dropout`); the explicit path
    computes the same numbers and returns them.
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.d_k, self.dropout = heads, d_model // heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.o = nn.Linear(d_model, d_model)

    def split(self, x):
        """(batch, len, d_model) -> (batch, heads, len, d_k)."""
        return x.view(x.size(0), x.size(1), self.heads, self.d_k).transpose(1, 2)

    def keys_values(self, x):
        """The keys and values of `x`, each (batch, heads, len, d_k)."""
        k, v = linear(self.kv, x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x, k, v, mask=None, causal=False, return_weights=False):
        """x (batch, tgt_len, d_model) attends to k, v; mask (batch, 1, 1, src_len) is True where allowed;
        `causal` also hides later positions (x being the last tgt_len positions of the keys' sequence)."""
        q = self.split(linear(self.q, x))
        p = self.dropout if self.training else 0.0
        explicit = return_weights or (p > 0.0 and q.device.type == "cpu")
        t, s = q.size(-2), k.size(-2)
        fused_causal = causal and not explicit and mask is None and t == s  # SDPA's triangle starts at key 0
        if causal and not fused_causal:  # the last t queries of a sequence of s: query i sees keys up to s - t + i
            triangle = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)  # (tgt_len, src_len)
            mask = triangle if mask is None else mask & triangle
        if explicit:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_k)  # (batch, heads, tgt_len, src_len)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            out = dropout(weights, p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=fused_causal)
            weights = None
        out = out.transpose(1, 2).reshape(x.size(0), x.size(1), -1)  # (batch, tgt_len, d_model)
        return linear(self.o, out), weights if return_weights else None


class FeedForward(nn.Sequential):
    """Linear, ReLU, dropout, linear (a Sequential, so its parameters keep the names ff.0 and ff.3)."""

    def __init__(self, d_model: int, ff_size: int, dropout: float):
        super().__init__(nn.Linear(d_model, ff_size), nn.ReLU(), Dropout(dropout), nn.Linear(ff_size, d_model))

    def forward(self, x):
        return linear(self[3], self[2](torch.relu(linear(self[0], x))))


class Residual(nn.Module):
    """x + dropout(sublayer(x)), with LayerNorm before (pre-norm) or after (post-norm)."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d_model), Dropout(dropout), pre_norm

    def forward(self, x, sublayer):
        if self.pre_norm:
            out, extra = sublayer(self.norm(x))
            return x + self.dropout(out), extra
        out, extra = sublayer(x)
        return self.norm(x + self.dropout(out)), extra


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        pre = cfg.norm == "pre"
        self.self_attn = MultiHeadAttention(cfg.hidden_size, cfg.heads, cfg.dropout)
        self.ff = FeedForward(cfg.hidden_size, cfg.ff_size, cfg.dropout)
        self.res_attn, self.res_ff = Residual(cfg.hidden_size, cfg.dropout, pre), Residual(cfg.hidden_size, cfg.dropout, pre)

    def forward(self, x, mask, return_weights=False):
        """x (batch, src_len, d_model) -> same shape, and the self-attention weights when asked for."""
        x, weights = self.res_attn(x, lambda y: self.self_attn(y, *self.self_attn.keys_values(y), mask=mask,
                                                               return_weights=return_weights))
        x, _ = self.res_ff(x, lambda y: (self.ff(y), None))
        return x, weights


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        pre = cfg.norm == "pre"
        self.self_attn = MultiHeadAttention(cfg.hidden_size, cfg.heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(cfg.hidden_size, cfg.heads, cfg.dropout)
        self.ff = FeedForward(cfg.hidden_size, cfg.ff_size, cfg.dropout)
        self.res_self, self.res_cross, self.res_ff = (Residual(cfg.hidden_size, cfg.dropout, pre) for _ in range(3))

    def forward(self, x, cache_kv, cross_kv, src_mask, return_weights=False):
        """One layer over x (batch, len, d_model).

        cache_kv: None for teacher forcing (causal self-attention over x), or
        this layer's cached (keys, values) for incremental decoding, which are
        extended with x's and returned. With `return_weights` the cross- and
        self-attention weights come back too, each (batch, heads, len, keys).
        """
        new_kv = None

        def self_attention(y):
            nonlocal new_kv
            k, v = self.self_attn.keys_values(y)
            if cache_kv is not None:
                k, v = torch.cat([cache_kv[0], k], dim=2), torch.cat([cache_kv[1], v], dim=2)
                new_kv = (k, v)
            # a cached step sees all its past
            return self.self_attn(y, k, v, causal=cache_kv is None, return_weights=return_weights)

        x, self_weights = self.res_self(x, self_attention)
        x, weights = self.res_cross(x, lambda y: self.cross_attn(y, *cross_kv, mask=src_mask, return_weights=return_weights))
        x, _ = self.res_ff(x, lambda y: (self.ff(y), None))
        return x, new_kv, (weights, self_weights)


class Embeddings(nn.Module):
    """Token embedding * sqrt(d_model) + position encoding, then dropout."""

    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_size
        self.scale = math.sqrt(d)
        self.tokens = nn.Embedding(vocab_size, d, padding_idx=PAD_ID)
        nn.init.normal_(self.tokens.weight, std=d**-0.5)
        if cfg.positions == "learned":
            self.positions = nn.Embedding(cfg.max_positions, d)
            nn.init.normal_(self.positions.weight, std=0.02)
        else:
            self.register_buffer("sinusoid", sinusoids(cfg.max_positions, d), persistent=False)
            self.positions = None
        self.dropout = Dropout(cfg.dropout)

    def forward(self, ids, start: int = 0):
        """ids (batch, len) at positions start.. -> (batch, len, d_model)."""
        where = torch.arange(start, start + ids.size(1), device=ids.device)
        pos = self.positions(where) if self.positions is not None else self.sinusoid[where]
        return self.dropout(self.tokens(ids) * self.scale + pos)


def sinusoids(length: int, d: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...): (length, d)."""
    position = torch.arange(length, dtype=torch.float)[:, None]
    rates = torch.exp(torch.arange(0, d, 2, dtype=torch.float) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)[:, : d // 2]
    return table


class Transformer(Seq2Seq):
    """Encoder and decoder stacks behind the shared Seq2Seq interface."""

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed, self.tgt_embed = Embeddings(src_vocab, cfg), Embeddings(tgt_vocab, cfg)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        pre = cfg.norm == "pre"
        self.encoder_norm = nn.LayerNorm(cfg.hidden_size) if pre else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.hidden_size) if pre else nn.Identity()
        self.out = nn.Linear(cfg.hidden_size, tgt_vocab)
        for name, p in self.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                nn.init.xavier_uniform_(p)
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_embed.tokens.weight

    def encode(self, src, src_mask) -> Tensors:
        if fast_path_applies(self, src):
            return fast_encode(self, src, src_mask)  # and readies the weights of the fast steps
        forget_step_weights(self)  # this memory's steps take the module path too
        memory, _ = self._run_encoder(src, src_mask, False)
        return memory

    def _run_encoder(self, src, src_mask, return_attention):
        mask = src_mask[:, None, None, :]  # (batch, 1, 1, src_len)
        x, weights = self.src_embed(src), []
        for layer in self.encoder:
            x, w = layer(x, mask, return_attention)
            weights.append(w)
        memory = {"states": self.encoder_norm(x), "src_mask": src_mask}  # (batch, src_len, d_model)
        for i, layer in enumerate(self.decoder):
            memory[f"cross_k{i}"], memory[f"cross_v{i}"] = layer.cross_attn.keys_values(memory["states"])
        self_attention = torch.stack(weights, dim=1) if return_attention else None  # (batch, layers, heads, src, src)
        return memory, self_attention

    def _run_decoder(self, x, memory, caches, return_attention):
        mask = memory["src_mask"][:, None, None, :]
        new_caches, cross, self_attention = [], [], []
        for i, layer in enumerate(self.decoder):
            cross_kv = (memory[f"cross_k{i}"], memory[f"cross_v{i}"])
            x, kv, (w, self_w) = layer(x, caches[i] if caches else None, cross_kv, mask, return_attention)
            new_caches.append(kv)
            cross.append(w)
            self_attention.append(self_w)
        attention = None
        if return_attention:  # each (batch, layers, heads, len, src_len or tgt keys)
            attention = {"cross": torch.stack(cross, dim=1), "decoder": torch.stack(self_attention, dim=1)}
        return linear(self.out, self.decoder_norm(x)), new_caches, attention

    def decode(self, tgt_in, memory, return_attention=False):
        logits, _, attention = self._run_decoder(self.tgt_embed(tgt_in), memory, None, return_attention)
        return logits, (attention["cross"] if return_attention else None)

    def attention_maps(self, src, src_mask, tgt_in):
        memory, encoder = self._run_encoder(src, src_mask, True)
        logits, _, attention = self._run_decoder(self.tgt_embed(tgt_in), memory, None, True)
        return logits, {**attention, "encoder": encoder}

    def init_state(self, memory: Tensors) -> Tensors:
        batch = memory["states"].size(0)
        empty = memory["states"].new_zeros(batch, self.cfg.heads, 0, self.cfg.hidden_size // self.cfg.heads)
        return {f"{kv}{i}": empty for i in range(len(self.decoder)) for kv in ("self_k", "self_v")}

    def stepper(self, memory: Tensors):
        """For one row with folded cross-attention on a CPU, the one-row step itself: whether it
        applies is checked once for the search (at some 55 us a step, 3% of a step's time)."""
        weights = step_weights(self, memory["src_mask"])  # on the tokens' device
        if weights is not None and memory["states"].size(0) == 1 and "cross_keys_folded0" in memory:
            one_row = weights.one_row_step(self.cfg.heads)
            if one_row is not None:
                return lambda prev_token, state: (*one_row(prev_token, state, memory), None)
        return super().stepper(memory)

    def step(self, prev_token, state, memory, return_attention=False):
        weights = None if return_attention else step_weights(self, prev_token)
        if weights is not None:
            logits, new_state = fast_step(self, weights, prev_token, state, memory)
            return logits, new_state, None
        position = state["self_k0"].size(2)
        x = self.tgt_embed(prev_token[:, None], start=position)  # (batch, 1, d_model)
        caches = [(state[f"self_k{i}"], state[f"self_v{i}"]) for i in range(len(self.decoder))]
        logits, caches, attention = self._run_decoder(x, memory, caches, return_attention)
        new_state = {}
        for i, (k, v) in enumerate(caches):
            new_state[f"self_k{i}"], new_state[f"self_v{i}"] = k, v  # (batch, heads, position + 1, d_k)
        return logits[:, 0], new_state, (attention["cross"][:, :, :, 0] if return_attention else None)
