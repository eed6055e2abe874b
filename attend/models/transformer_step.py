"""One search step of the Transformer decoder in as few PyTorch calls as it takes.

At batch 1 a decoding step multiplies single rows by small matrices, and the
fixed cost of each PyTorch call (Python, dispatch, a module's attribute lookup)
rivals the arithmetic: on a 2-core EPYC, the module path of `transformer.py`
took 2.7 ms per step for a model of the usual shape with tiny matrices, that
is, for nothing but calls. This path computes the same function with far fewer:
the decoder's weights are gathered once into plain tensors and prepared
products (`inference_linear`), the self-attention's query, key and value come
from one product over a stacked weight, and nothing is computed that search does
not read. It serves inference on a CPU without attention weights;
`Transformer.step` takes the module path otherwise. The key/value cache has the
module path's layout, so the two paths agree step for step (tests/test_models.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from attend.models.base import Tensors
from attend.models.inference_linear import PreparedWeight, applies, cached


@dataclass
class LayerWeights:
    """One decoder layer: its three LayerNorms as (weight, bias) and its prepared products."""

    norms: tuple  # ((weight, bias) of self-attention, cross-attention, feed-forward)
    qkv: PreparedWeight  # d_model -> 3 * d_model: query, key, value stacked
    self_out: PreparedWeight
    cross_query: PreparedWeight
    cross_out: PreparedWeight
    ff_in: PreparedWeight
    ff_out: PreparedWeight


def _stacked(*layers) -> PreparedWeight:
    return PreparedWeight(torch.cat([layer.weight for layer in layers]), torch.cat([layer.bias for layer in layers]))


class DecoderWeights:
    """The decoder's parameters as the fast step reads them, gathered from the modules once."""

    def __init__(self, model):
        def norm(module):
            return module.weight.detach(), module.bias.detach()

        self.layers = [
            LayerWeights(
                norms=(norm(layer.res_self.norm), norm(layer.res_cross.norm), norm(layer.res_ff.norm)),
                qkv=_stacked(layer.self_attn.q, layer.self_attn.kv), self_out=_stacked(layer.self_attn.o),
                cross_query=_stacked(layer.cross_attn.q), cross_out=_stacked(layer.cross_attn.o),
                ff_in=_stacked(layer.ff[0]), ff_out=_stacked(layer.ff[3]),
            )
            for layer in model.decoder
        ]
        embed = model.tgt_embed
        self.tokens, self.scale = embed.tokens.weight.detach(), embed.scale
        self.positions = (embed.positions.weight if embed.positions is not None else embed.sinusoid).detach()
        self.final_norm = norm(model.decoder_norm) if model.cfg.norm == "pre" else None
        self.out = PreparedWeight(model.out.weight, model.out.bias)
        self.eps = model.decoder[0].res_self.norm.eps


def _parameter_dicts(model) -> list[dict]:
    """The `_parameters` dicts of every module the step reads (a dict lookup, unlike Module.__getattr__)."""
    modules = [model.tgt_embed, model.decoder, model.decoder_norm, model.out]
    return [m._parameters for top in modules for m in top.modules() if m._parameters]


def decoder_weights(model) -> DecoderWeights:
    """The gathered weights, remade when a parameter is replaced or changed in place.

    Walking the modules costs more than a step's arithmetic at batch 1, so the
    parameter dicts are found once per model (and again after each switch
    between training and evaluation); a module swapped into a model after it
    decoded would not be seen (attend swaps none; int8 quantization copies).
    """
    dicts = cached(model, "parameter dicts", None, lambda: _parameter_dicts(model))
    key = tuple((p.data_ptr(), p._version) for params in dicts for p in params.values() if p is not None)
    return cached(model, "decoder", key, lambda: DecoderWeights(model))


def fast_step_applies(model, prev_token: torch.Tensor) -> bool:
    """Inference on a CPU with float, unquantized linear layers (int8 models keep the module path)."""
    layer = model.decoder[0]
    return (not model.training and not torch.is_grad_enabled() and prev_token.device.type == "cpu"
            and applies(model.out, model.out.weight) and applies(layer.ff[0], layer.ff[0].weight)
            and applies(layer.self_attn.q, layer.self_attn.q.weight))


def fast_step(model, prev_token: torch.Tensor, state: Tensors, memory: Tensors):
    """prev_token (batch,) -> logits (batch, vocab), the state one position longer."""
    w = decoder_weights(model)
    batch, d, heads = prev_token.size(0), model.cfg.hidden_size, model.cfg.heads
    position = state["self_k0"].size(2)
    x = F.embedding(prev_token, w.tokens) * w.scale + w.positions[position]  # (batch, d_model)
    src_mask = memory["src_mask"]
    cross_mask: Optional[torch.Tensor] = None if bool(src_mask.all()) else src_mask[:, None, None, :]
    pre_norm = w.final_norm is not None

    def residual(x, norm, sublayer):
        """Pre-norm x + f(LN(x)) or post-norm LN(x + f(x)), as `Residual` does."""
        if pre_norm:
            return x + sublayer(F.layer_norm(x, (d,), *norm, w.eps))
        return F.layer_norm(x + sublayer(x), (d,), *norm, w.eps)

    new_state = {}
    for i, layer in enumerate(w.layers):
        def self_attention(h):
            q, k, v = layer.qkv(h).view(batch, 3, heads, 1, -1).unbind(1)  # each (batch, heads, 1, d_k)
            keys = new_state[f"self_k{i}"] = torch.cat([state[f"self_k{i}"], k], dim=2)
            values = new_state[f"self_v{i}"] = torch.cat([state[f"self_v{i}"], v], dim=2)
            return layer.self_out(F.scaled_dot_product_attention(q, keys, values).view(batch, d))

        def cross_attention(h):
            q = layer.cross_query(h).view(batch, heads, 1, -1)
            out = F.scaled_dot_product_attention(q, memory[f"cross_k{i}"], memory[f"cross_v{i}"], attn_mask=cross_mask)
            return layer.cross_out(out.view(batch, d))

        x = residual(x, layer.norms[0], self_attention)
        x = residual(x, layer.norms[1], cross_attention)
        x = residual(x, layer.norms[2], lambda h: layer.ff_out(torch.relu(layer.ff_in(h))))
    if pre_norm:
        x = F.layer_norm(x, (d,), *w.final_norm, w.eps)
    return w.out(x), new_state
