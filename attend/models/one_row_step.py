"""The Transformer's decoding step for one row (greedy or sampling, one sentence) on a CPU with several
threads, in as few PyTorch calls as it takes.

At batch 1 a step streams every decoder weight from memory (17.6 MB for the
Multi30k Transformer), more than the last-level cache holds (8 MB on this
project's EPYC VM). So whatever a step touches besides the weights, Python's
and PyTorch's own code and data included, has left the caches by the next
step, and each PyTorch call, even a view, costs 10-40 us instead of 2-7 us
(measured: a layer norm of 256 numbers took 7 us in a loop and 32 us after
16 MB had been read). CTranslate2 makes the same products from C++; here the
step is shaped so that it needs few calls:

- the residual stream is kept as (threads, d_model / threads, 1): the shape
  in which a product with one block of weight rows per thread returns its
  output, so outputs and the stream add without views, and layer norms
  normalise over that whole shape;
- each product is one batched call, a block of the weight's rows per thread
  multiplying the same input column (an `as_strided` view of the input row);
  where a sublayer's output joins the residual stream, the stream is the
  call's added term, so no add follows;
- biases ride inside products: the feed-forward's first layer gets one more
  unit whose weights are zero and bias one (its ReLU is always 1), and the
  second layer's bias is that unit's column; the cross-attention's output
  bias is spread over the folded values (`fold_cross_attention`), since each
  head's attention weights sum to one; only the self-attention's output
  bias is added to the stream by a call of its own;
- a sentence's folded cross-attention keys and values are laid out for these
  calls at its first step, not at every one.

A step of the Multi30k Transformer (3 layers) makes 79 PyTorch calls this way,
against 118 through the one-row products of `transformer_inference.fast_step`
(counted with a TorchFunctionMode), and took 1.60 ms against 1.88 ms.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from attend.models.inference_linear import PreparedWeight


def block_count(threads: int, d_model: int) -> int:
    """Weight blocks per product: the most threads, up to `threads`, that split d_model evenly (the
    residual stream is cut into that many blocks); 1 where none does."""
    return max((t for t in range(1, threads + 1) if d_model % t == 0), default=1)


class _Layer:
    """One decoder layer's weights in the step's layouts (see the module's docstring)."""

    def __init__(self, weights, blocks: int, d_model: int):
        shape = (blocks, d_model // blocks, 1)  # the residual stream's
        self.norms = [(weight.reshape(shape), bias.reshape(shape)) for weight, bias in weights.norms]
        qkv, self_out = weights.qkv.row_blocks(blocks), weights.self_out.row_blocks(blocks)
        self.qkv, self.qkv_bias = qkv.weight, qkv.bias  # (blocks, 3 * d_model / blocks, d_model), (..., 1)
        self.self_out, self.self_out_bias = self_out.weight, self_out.bias  # the bias in the stream's shape
        self.cross_output_bias = weights.cross_output_bias
        # feed-forward: one more hidden unit that is always 1 (weights 0, bias 1) carries the second layer's bias
        ff_in, ff_out = weights.ff_in, weights.ff_out
        always_one = PreparedWeight(torch.cat([ff_in.weight, ff_in.weight.new_zeros(1, d_model)]),
                                    torch.cat([ff_in.bias, ff_in.bias.new_ones(1)])).row_blocks(blocks)
        self.ff_in, self.ff_in_bias = always_one.weight, always_one.bias  # zero units up to whole blocks
        hidden = self.ff_in.size(0) * self.ff_in.size(1)
        self.hidden_column = ((blocks, hidden, 1), (0, 1, hidden))  # the hidden row read whole by every block
        ff_out_weight = torch.cat([ff_out.weight, ff_out.bias[:, None]], dim=1)  # (d_model, ff + 1)
        ff_out_weight = F.pad(ff_out_weight, (0, hidden - ff_out_weight.size(1)))  # zero columns for the zero units
        self.ff_out = PreparedWeight(ff_out_weight, None).row_blocks(blocks).weight


class OneRowStep:
    """A decoding step for one row from `DecoderWeights` with float products, for `fast_step`: the same
    logits and key/value cache as the module path, in the calls the module's docstring describes."""

    def __init__(self, weights, heads: int, threads: int):
        d_model = weights.tokens.size(1)
        self.blocks = blocks = block_count(threads, d_model)
        self.d_model, self.heads, self.eps, self.scale = d_model, heads, weights.eps, weights.scale
        self.stream = (blocks, d_model // blocks, 1)  # the residual stream's shape
        self.column = ((blocks, d_model, 1), (0, 1, d_model))  # the stream read whole by every block
        self.heads_column = ((heads, d_model, 1), (0, 1, d_model))  # ... and by every head
        self.tokens = weights.tokens
        self.positions = weights.positions.reshape(-1, *self.stream)
        self.pre_norm = weights.final_norm is not None
        self.final_norm = [t.reshape(self.stream) for t in weights.final_norm] if self.pre_norm else None
        self.layers = [_Layer(layer, blocks, d_model) for layer in weights.layers]
        self.names = [(f"self_k{i}", f"self_v{i}") for i in range(len(self.layers))]
        # the output layer in one block of columns per thread, as the large products of `inference_linear`
        _, self.out, self.out_bias = weights.out.column_blocks(blocks)  # (blocks, d_model, width)
        vocab, width = weights.out.weight.size(0), self.out.size(2)
        self.out_row = ((blocks, 1, d_model), (0, d_model, 1))
        self.logits = ((1, vocab), (width * blocks, 1))
        self._laid_out = threading.local()  # per thread: (a memory's first folded keys, its layout)

    def cross_attention(self, memory: dict) -> list:
        """Per layer (keys (heads, src_len, d_model), score biases (heads, src_len, 1), values
        (blocks, d_model / blocks, heads * src_len) with the output bias in them, the attention weights'
        view as a column) for a memory of one sentence with folded cross-attention; laid out at its
        first step (in each thread that decodes it)."""
        first, laid_out = memory["cross_keys_folded0"], self._laid_out
        if getattr(laid_out, "memory", None) is not first:
            heads, d_model = self.heads, self.d_model
            laid_out.layers = []
            for i, layer in enumerate(self.layers):
                keys = memory[f"cross_keys_folded{i}"][0].t()  # (heads * src_len, d_model), contiguous
                length = keys.size(0) // heads
                values = memory[f"cross_values_folded{i}"][0] + layer.cross_output_bias / heads
                laid_out.layers.append((keys.reshape(heads, length, d_model),
                                        memory[f"cross_bias{i}"].reshape(heads, length, 1),
                                        values.t().contiguous().reshape(self.blocks, -1, heads * length),
                                        ((self.blocks, heads * length, 1), (0, 1, heads * length))))
            laid_out.memory = first
        return laid_out.layers

    def __call__(self, prev_token: torch.Tensor, state: dict, memory: dict):
        """prev_token (1,) -> logits (1, vocab), the state one position longer."""
        stream, column, eps, heads, pre_norm = self.stream, self.column, self.eps, self.heads, self.pre_norm
        position = state["self_k0"].size(2)
        x = torch.add(self.positions[position], self.tokens.index_select(0, prev_token).view(stream),
                      alpha=self.scale)  # (blocks, d_model / blocks, 1)
        new_state = {}
        for layer, cross, (k_name, v_name) in zip(self.layers, self.cross_attention(memory), self.names):
            h = torch.layer_norm(x, stream, *layer.norms[0], eps) if pre_norm else x
            qkv = torch.baddbmm(layer.qkv_bias, layer.qkv, h.as_strided(*column))
            q, k, v = qkv.view(3, 1, heads, 1, -1).unbind(0)  # each (1, heads, 1, d_k)
            keys = new_state[k_name] = torch.cat([state[k_name], k], dim=2)
            values = new_state[v_name] = torch.cat([state[v_name], v], dim=2)
            attended = F.scaled_dot_product_attention(q, keys, values)  # (1, heads, 1, d_k): d_model numbers
            x = torch.baddbmm(torch.add(x, layer.self_out_bias), layer.self_out,
                              attended.as_strided(*column))
            if not pre_norm:
                x = torch.layer_norm(x, stream, *layer.norms[0], eps)

            cross_keys, cross_bias, cross_values, weights_column = cross
            h = torch.layer_norm(x, stream, *layer.norms[1], eps) if pre_norm else x
            scores = torch.baddbmm(cross_bias, cross_keys, h.as_strided(*self.heads_column))
            weights = torch.softmax(scores, dim=1)  # (heads, src_len, 1)
            x = torch.baddbmm(x, cross_values, weights.as_strided(*weights_column))
            if not pre_norm:
                x = torch.layer_norm(x, stream, *layer.norms[1], eps)

            h = torch.layer_norm(x, stream, *layer.norms[2], eps) if pre_norm else x
            hidden = torch.relu_(torch.baddbmm(layer.ff_in_bias, layer.ff_in, h.as_strided(*column)))
            x = torch.baddbmm(x, layer.ff_out, hidden.as_strided(*layer.hidden_column))
            if not pre_norm:
                x = torch.layer_norm(x, stream, *layer.norms[2], eps)
        if pre_norm:
            x = torch.layer_norm(x, stream, *self.final_norm, eps)
        logits = torch.baddbmm(self.out_bias, x.as_strided(*self.out_row), self.out)  # (blocks, 1, width)
        return logits.as_strided(*self.logits), new_state
