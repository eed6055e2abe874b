"""The output layer's product, hidden states to vocabulary logits, laid out for CPU decoding.

nn.Linear keeps its weight as (vocab, hidden) and multiplies by its transpose.
For the vocabulary-sized output layer and only a few rows, which is what a
decoding step sends, the BLAS behind PyTorch's CPU build is much slower with
that layout than with a contiguous (hidden, vocab) copy; from about 128 rows
on it is the other way round (benchmarks/speed.py times both layouts in its
"output layer" table; the README has the numbers). So inference on a CPU
multiplies up to FEW_ROWS rows by a cached transposed copy. The copy is
remade whenever the weight changes (its storage or version counter), so
training, loading and averaging never meet a stale one; writes through
`weight.data` would bypass the version counter, and attend makes none.
Training, GPUs, autocast and quantized layers take the module's own path.
"""

from __future__ import annotations

import torch
from torch import nn

FEW_ROWS = 64  # up to here the transposed copy was the faster one on the CPU measured (2-core EPYC, AVX2)


def vocabulary_logits(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for x (..., hidden) -> (..., vocab), by the faster layout where it applies."""
    weight = getattr(layer, "weight", None)
    if (not isinstance(weight, torch.Tensor) or weight.device.type != "cpu" or x.dtype != weight.dtype
            or (torch.is_grad_enabled() and weight.requires_grad) or x.numel() > FEW_ROWS * x.size(-1)):
        return layer(x)
    key = (weight.data_ptr(), weight._version)
    cached = layer.__dict__.get("_transposed_weight")
    if cached is None or cached[0] != key:
        cached = (key, weight.detach().t().contiguous())  # (hidden, vocab)
        layer.__dict__["_transposed_weight"] = cached
    rows = x.reshape(-1, x.size(-1))
    out = rows @ cached[1] if layer.bias is None else torch.addmm(layer.bias, rows, cached[1])
    return out.view(*x.shape[:-1], out.size(-1))
