"""The Transformer's encoder pass and decoding step for CPU inference, in as few PyTorch calls as they take.

At batch 1 a decoding step multiplies single rows by small matrices, and the
fixed cost of each PyTorch call (Python, dispatch, a module's attribute lookup)
rivals the arithmetic: on a 2-core EPYC, the module path of `transformer.py`
took 2.7 ms per step for a model of the usual shape with tiny matrices, that
is, for nothing but calls, and 2.4 ms to encode a 15-token sentence. These
paths compute the same functions with far fewer calls: the weights are gathered
once into plain tensors and prepared products (`inference_linear`), query, key
and value come from one product over a stacked weight, the cross-attention keys
and values of every decoder layer from one more, and nothing is computed that
search does not read. For one sentence or a few short ones, cross-attention's
query and output weights are folded into each sentence's keys and values at
the encoder pass (`fold_cross_attention`), so a step reads two small matrices
per layer instead of two d_model x d_model weights; the weights and their
versions are checked once per encoder pass, not at every step (`step_weights`),
and at batch 1 each product is one call whose layout was chosen once
(`DecoderWeights.for_rows`). On the Multi30k model these took greedy decoding
at batch 1 from about 19.7 to 23.9 sentences/s. One row with folded
cross-attention on several threads goes further, through `one_row_step`.
They serve inference on a CPU without attention weights, with float weights
or the int8 ones of `quantize_int8` (each int8 layer then runs its own
kernel, and nothing is folded); `Transformer` takes its module path
otherwise. Memory and the key/value cache have the module path's layout
(memory has the folded matrices besides), so the two agree step for step
(tests/test_models.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from attend.models.base import Tensors
from attend.models.huge_pages import on_huge_pages
from attend.models.inference_linear import PreparedWeight, applies, cached, forget, keep, kept
from attend.models.one_row_step import OneRowStep, block_count

Norm = tuple  # a LayerNorm's (weight, bias)
STEP_WEIGHTS = "decoder for steps"  # where `fast_encode` leaves the weights for the steps that follow
Product = Callable[[torch.Tensor], torch.Tensor]  # rows (n, in) -> (n, out): a PreparedWeight or an int8 layer


def _norm(module) -> Norm:
    """A LayerNorm's (weight, bias), detached."""
    return module.weight.detach(), module.bias.detach()


def _stacked(*layers) -> Product:
    """Linear layers reading the same input as one product, outputs side by side: float layers through
    one prepared weight stacked along the output; int8 layers (`quantize_int8`) each through its own
    int8 kernel, outputs concatenated."""
    if isinstance(layers[0], Int8Linear):
        return layers[0] if len(layers) == 1 else lambda rows: torch.cat([layer(rows) for layer in layers], dim=-1)
    if len(layers) == 1:
        return PreparedWeight(layers[0].weight, layers[0].bias)
    return PreparedWeight(torch.cat([layer.weight for layer in layers]), torch.cat([layer.bias for layer in layers]))


def _output_bias(layer) -> torch.Tensor:
    """A float or int8 Linear's bias."""
    return layer.bias().detach() if callable(layer.bias) else layer.bias.detach()


def _embedding_tables(embed):
    """Token table, scale and position table (learned or sinusoidal) of an `Embeddings`."""
    positions = embed.positions.weight if embed.positions is not None else embed.sinusoid
    return embed.tokens.weight.detach(), embed.scale, positions.detach()


@dataclass
class EncoderLayerWeights:
    norms: tuple  # (self-attention, feed-forward)
    qkv: Product  # d_model -> 3 * d_model: query, key, value stacked
    out: Product
    ff_in: Product
    ff_out: Product


@dataclass
class DecoderLayerWeights:
    norms: tuple  # (self-attention, cross-attention, feed-forward)
    qkv: Product
    self_out: Product
    cross_query: Product
    cross_out: Product
    cross_output_bias: torch.Tensor  # added to the folded cross-attention's output
    ff_in: Product
    ff_out: Product


class EncoderWeights:
    """What the encoder pass reads, gathered from the modules once."""

    def __init__(self, model):
        self.layers = [
            EncoderLayerWeights(
                norms=(_norm(layer.res_attn.norm), _norm(layer.res_ff.norm)),
                qkv=_stacked(layer.self_attn.q, layer.self_attn.kv), out=_stacked(layer.self_attn.o),
                ff_in=_stacked(layer.ff[0]), ff_out=_stacked(layer.ff[3]))
            for layer in model.encoder
        ]
        self.tokens, self.scale, self.positions = _embedding_tables(model.src_embed)
        self.final_norm = _norm(model.encoder_norm) if model.cfg.norm == "pre" else None
        # every decoder layer's cross-attention keys and values come from the encoder states: one product
        self.cross_kv = _stacked(*(layer.cross_attn.kv for layer in model.decoder))
        # every decoder layer's cross-attention query and output weights, for folding into a sentence's
        # keys and values (`fold_cross_attention`); float weights only
        self.cross_folding = None if isinstance(model.decoder[0].cross_attn.q, Int8Linear) else CrossFolding(
            [layer.cross_attn for layer in model.decoder], model.cfg.heads)
        self.eps = model.encoder[0].res_attn.norm.eps


class DecoderWeights:
    """What a decoding step reads, gathered from the modules once."""

    def __init__(self, model):
        self.layers = [
            DecoderLayerWeights(
                norms=(_norm(layer.res_self.norm), _norm(layer.res_cross.norm), _norm(layer.res_ff.norm)),
                qkv=_stacked(layer.self_attn.q, layer.self_attn.kv), self_out=_stacked(layer.self_attn.o),
                cross_query=_stacked(layer.cross_attn.q), cross_out=_stacked(layer.cross_attn.o),
                cross_output_bias=_output_bias(layer.cross_attn.o),
                ff_in=_stacked(layer.ff[0]), ff_out=_stacked(layer.ff[3]))
            for layer in model.decoder
        ]
        self.tokens, self.scale, self.positions = _embedding_tables(model.tgt_embed)
        self.final_norm = _norm(model.decoder_norm) if model.cfg.norm == "pre" else None
        self.out = _stacked(model.out)
        self.eps = model.decoder[0].res_self.norm.eps
        self._one_row = None  # (layers, out) with each product as one call, made at the first batch-1 step
        self._one_row_step: tuple = (0, None)  # (threads, OneRowStep or None), made at a first step of one row

    def one_row_step(self, heads: int) -> Optional[OneRowStep]:
        """The step for one row with folded cross-attention where its products apply: float weights and
        several threads (on one, the (in, out) copies of `for_rows` are faster than blocks of rows)."""
        threads = torch.get_num_threads()
        if self._one_row_step[0] != threads:
            applies_here = (block_count(threads, self.tokens.size(1)) > 1 and all(
                isinstance(getattr(layer, name), PreparedWeight) for layer in self.layers
                for name in ("qkv", "self_out", "ff_in", "ff_out")) and isinstance(self.out, PreparedWeight))
            self._one_row_step = (threads, OneRowStep(self, heads, threads) if applies_here else None)
        return self._one_row_step[1]

    def for_rows(self, batch: int) -> tuple:
        """(layers, output product) for a step of `batch` rows: at batch 1, each float product is one
        call whose layout was chosen once (`PreparedWeight.for_one_row`)."""
        if batch != 1:
            return self.layers, self.out
        if self._one_row is None:
            products = ("qkv", "self_out", "cross_query", "cross_out", "ff_in", "ff_out")
            layers = [replace(layer, **{name: _for_one_row(getattr(layer, name)) for name in products})
                      for layer in self.layers]
            self._one_row = (layers, _for_one_row(self.out))
        return self._one_row


def _for_one_row(product: Product) -> Product:
    return product.for_one_row() if isinstance(product, PreparedWeight) else product


def _gathered(model, name: str, parts: Callable[[], list], make: Callable):
    """`make(model)` cached under `name`, remade when a parameter of `parts()` is replaced or changed.

    Walking the modules costs more than a step's arithmetic at batch 1, so their
    parameter dicts are found once per model (again after each switch between
    training and evaluation); a module swapped into a model after it decoded
    would not be seen (attend swaps none; int8 quantization copies the model).
    """
    dicts = cached(model, f"{name} parameter dicts", None,
                   lambda: [m._parameters for top in parts() for m in top.modules() if m._parameters])
    key = tuple((p.data_ptr(), p._version) for params in dicts for p in params.values() if p is not None)
    return cached(model, name, key, lambda: make(model))


def encoder_weights(model) -> EncoderWeights:
    return _gathered(model, "encoder", lambda: [model.src_embed, model.encoder, model.encoder_norm]
                     + [layer.cross_attn for layer in model.decoder], EncoderWeights)


def decoder_weights(model) -> DecoderWeights:
    return _gathered(model, "decoder", lambda: [model.tgt_embed, model.decoder, model.decoder_norm, model.out],
                     DecoderWeights)


def _servable(layer) -> bool:
    """A float linear layer at CPU inference, or an int8 one from `quantize_int8`."""
    weight = getattr(layer, "weight", None)
    return isinstance(layer, Int8Linear) or (isinstance(weight, torch.Tensor) and applies(layer, weight))


def _inference_on_cpu(model, tokens: torch.Tensor) -> bool:
    """Evaluation mode, no gradients, CPU tokens, no autocast: what may change from one call to the next."""
    return (not model.training and not torch.is_grad_enabled() and tokens.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu"))


def fast_path_applies(model, tokens: torch.Tensor) -> bool:
    """Inference on a CPU, with float or int8 linear layers."""
    layer = model.decoder[0]
    return (_inference_on_cpu(model, tokens)
            and _servable(model.out) and _servable(layer.ff[0]) and _servable(layer.self_attn.q))


def step_weights(model, tokens: torch.Tensor) -> Optional[DecoderWeights]:
    """The decoder weights for a fast step, or None where the module path must take it.

    Checking the layers and every weight's version costs ~100 us in Python, a
    few percent of a step at batch 1, so `fast_encode` checks them once for
    the search that follows and leaves the weights here; a step checks only
    what can change between steps. A step thus uses the weights of its
    memory's encoder pass (its keys and values come from that pass anyway).
    """
    return kept(model, STEP_WEIGHTS) if _inference_on_cpu(model, tokens) else None


def forget_step_weights(model) -> None:
    """After an encoder pass on the module path: its steps take that path too."""
    forget(model, STEP_WEIGHTS)


def _sublayer_input(x, norm: Norm, eps: float, pre_norm: bool):
    """What a residual block's sublayer reads: LN(x) with pre-norm, x with post-norm (as `Residual`)."""
    return torch.layer_norm(x, x.shape[-1:], *norm, eps) if pre_norm else x


def _sublayer_added(x, out, norm: Norm, eps: float, pre_norm: bool):
    """The block's output: x + f(...) with pre-norm, LN(x + f(x)) with post-norm (as `Residual`)."""
    return x + out if pre_norm else torch.layer_norm(x + out, x.shape[-1:], *norm, eps)


def _key_padding(src_mask: torch.Tensor) -> Optional[torch.Tensor]:
    """The attention mask (batch, 1, 1, src_len), or None when nothing is padded (one call saved per use)."""
    return None if bool(src_mask.all()) else src_mask[:, None, None, :]


class CrossFolding:
    """Every decoder layer's cross-attention query and output weights, arranged by head for folding:
    (layers, 2, heads, d_k, d_model), the query's Wq_h / sqrt(d_k) and the output's Wo_h^T, and the
    query bias (layers, 1, heads, d_k, 1), divided by sqrt(d_k)."""

    def __init__(self, attentions, heads: int):
        d_model = attentions[0].q.weight.size(1)
        d_k = d_model // heads
        scale = d_k ** -0.5  # scaled dot-product attention's 1 / sqrt(d_k), folded in once
        self.weights = on_huge_pages(torch.stack([torch.stack([a.q.weight.detach().view(heads, d_k, d_model) * scale,
                                                 a.o.weight.detach().t().reshape(heads, d_k, d_model)])
                                    for a in attentions]))
        self.query_bias = torch.stack([a.q.bias.detach().view(1, heads, d_k, 1) * scale for a in attentions])


def fold_cross_attention(folding: CrossFolding, keys_values: torch.Tensor, src_mask: torch.Tensor):
    """Each decoder layer's cross-attention for each sentence's keys and values, its query and output
    products folded in: what a step then reads is these per-sentence matrices instead of two weights.

    With head h's query weight Wq_h (d_k, d_model), scores are
    (x Wq_h^T + bq_h) k_h^T / sqrt(d_k) = x (k_h Wq_h / sqrt(d_k))^T + bq_h k_h^T / sqrt(d_k),
    and the output, concat_h(p_h v_h) Wo^T + bo = sum_h p_h (v_h Wo_h^T) + bo with Wo_h the
    output weight's d_k columns of head h. Stacking the heads, a step is one product to scores, one
    softmax per head and one product to the output. Padding gets a score bias of -inf.

    keys_values (layers, 2, batch, heads, src_len, d_k), src_mask (batch, src_len) -> folded keys and
    values (layers, 2, batch, heads * src_len, d_model) and score biases (layers, batch, 1, heads * src_len).
    """
    layers, _, batch, heads, length, _ = keys_values.shape
    folded = torch.matmul(keys_values, folding.weights[:, :, None])  # (layers, 2, batch, heads, src_len, d_model)
    bias = torch.matmul(keys_values[:, 0], folding.query_bias)  # (layers, batch, heads, src_len, 1)
    bias = bias.view(layers, batch, heads, length).masked_fill(~src_mask[:, None, :], float("-inf"))
    return folded.view(layers, 2, batch, heads * length, -1), bias.view(layers, batch, 1, heads * length)


def _folding_pays(batch: int, length: int, heads: int, d_model: int) -> bool:
    """Whether a step reads fewer numbers from folded matrices (batch * 2 * heads * src_len * d_model)
    than from the query and output weights plus keys and values (2 * d_model^2 + batch * 2 * src_len *
    d_model), so in practice: one sentence or a few short ones. At batch 1 every weight read counts."""
    return batch * length * (heads - 1) <= d_model


def fast_encode(model, src: torch.Tensor, src_mask: torch.Tensor) -> Tensors:
    """src (batch, src_len) -> the memory `Transformer.encode` gives; readies the steps' weights."""
    w = encoder_weights(model)
    keep(model, STEP_WEIGHTS, decoder_weights(model))
    batch, length = src.shape
    d, heads = model.cfg.hidden_size, model.cfg.heads
    x = (F.embedding(src, w.tokens) * w.scale + w.positions[:length]).view(batch * length, d)  # one row per token
    mask, pre_norm = _key_padding(src_mask), w.final_norm is not None
    for layer in w.layers:
        h = _sublayer_input(x, layer.norms[0], w.eps, pre_norm)
        # (rows, 3 * d_model) -> q, k, v each (batch, heads, src_len, d_k)
        q, k, v = layer.qkv(h).view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (batch, heads, src_len, d_k)
        out = out.transpose(1, 2).reshape(batch * length, d)  # one row per token again
        x = _sublayer_added(x, layer.out(out), layer.norms[0], w.eps, pre_norm)
        h = _sublayer_input(x, layer.norms[1], w.eps, pre_norm)
        x = _sublayer_added(x, layer.ff_out(torch.relu(layer.ff_in(h))), layer.norms[1], w.eps, pre_norm)
    if pre_norm:
        x = torch.layer_norm(x, (d,), *w.final_norm, w.eps)
    # (rows, layers * 2 * d_model) -> (layers, 2, batch, heads, src_len, d_k)
    cross = w.cross_kv(x).view(batch, length, -1, 2, heads, d // heads).permute(2, 3, 0, 4, 1, 5).contiguous()
    memory = {"states": x.view(batch, length, d), "src_mask": src_mask}
    for i in range(cross.size(0)):
        memory[f"cross_k{i}"], memory[f"cross_v{i}"] = cross[i, 0], cross[i, 1]
    if w.cross_folding is not None and _folding_pays(batch, length, heads, d):
        folded, bias = fold_cross_attention(w.cross_folding, cross, src_mask)
        for i in range(cross.size(0)):
            # keys (batch, d_model, heads * src_len), as a step multiplies by them; values (batch, heads * src_len, d_model)
            memory[f"cross_keys_folded{i}"] = folded[i, 0].transpose(1, 2)
            memory[f"cross_values_folded{i}"] = folded[i, 1]
            memory[f"cross_bias{i}"] = bias[i]
    return memory


def fast_step(model, w: DecoderWeights, prev_token: torch.Tensor, state: Tensors, memory: Tensors):
    """prev_token (batch,) -> logits (batch, vocab), the state one position longer, by the weights
    `step_weights` gives."""
    batch, d, heads = prev_token.size(0), model.cfg.hidden_size, model.cfg.heads
    folded = "cross_keys_folded0" in memory
    if batch == 1 and folded and (one_row := w.one_row_step(heads)) is not None:
        return one_row(prev_token, state, memory)
    position = state["self_k0"].size(2)
    x = torch.add(w.positions[position], w.tokens.index_select(0, prev_token), alpha=w.scale)  # (batch, d_model)
    pre_norm = w.final_norm is not None
    cross_mask = None if folded else _key_padding(memory["src_mask"])
    new_state = {}
    layers, output = w.for_rows(batch)
    for i, layer in enumerate(layers):
        h = _sublayer_input(x, layer.norms[0], w.eps, pre_norm)
        q, k, v = layer.qkv(h).view(batch, 3, heads, 1, -1).unbind(1)  # each (batch, heads, 1, d_k)
        keys = new_state[f"self_k{i}"] = torch.cat([state[f"self_k{i}"], k], dim=2)
        values = new_state[f"self_v{i}"] = torch.cat([state[f"self_v{i}"], v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values).view(batch, d)
        x = _sublayer_added(x, layer.self_out(out), layer.norms[0], w.eps, pre_norm)

        h = _sublayer_input(x, layer.norms[1], w.eps, pre_norm)
        if folded:  # by fast_encode
            scores = torch.baddbmm(memory[f"cross_bias{i}"], h.view(batch, 1, d), memory[f"cross_keys_folded{i}"])
            weights = torch.softmax(scores.view(batch, heads, -1), dim=-1).view(batch, 1, -1)
            out = torch.baddbmm(layer.cross_output_bias, weights, memory[f"cross_values_folded{i}"]).view(batch, d)
        else:
            q = layer.cross_query(h).view(batch, heads, 1, -1)
            out = F.scaled_dot_product_attention(q, memory[f"cross_k{i}"], memory[f"cross_v{i}"],
                                                 attn_mask=cross_mask)
            out = layer.cross_out(out.view(batch, d))
        x = _sublayer_added(x, out, layer.norms[1], w.eps, pre_norm)

        h = _sublayer_input(x, layer.norms[2], w.eps, pre_norm)
        x = _sublayer_added(x, layer.ff_out(torch.relu(layer.ff_in(h))), layer.norms[2], w.eps, pre_norm)
    if pre_norm:
        x = torch.layer_norm(x, (d,), *w.final_norm, w.eps)
    return output(x), new_state
