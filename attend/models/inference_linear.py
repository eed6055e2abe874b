"""Linear layers at CPU inference: the weight laid out for the number of rows a step sends.

nn.Linear keeps its weight as (out, in), and PyTorch's CPU build multiplies by
it through MKL, which is slow for the few rows a decoding step has: each row
streams the whole weight from memory again. Measured on a 2-core EPYC (AVX2),
for the 8,000 x 256 output layer, nn.Linear took 933 us for one row and
2,522 us for five; `benchmarks/speed.py` prints the table for its machine.
So at inference a layer's weight is prepared once, in the forms below, each made
when first needed:
- one row, several threads, a large weight: the weight cut by output columns
  into one block per thread, (threads, in, out / threads), multiplied by one
  batched product that PyTorch runs a block per thread. One row is bound by
  memory, and MKL streams a one-row product's weight on one thread whatever
  the thread count: 11 GB/s on two threads, where two threads together read
  at 23 GB/s. In a decoding step of the Multi30k Transformer its 8,001 x 256
  output layer took 0.34 ms this way against 0.47 ms on one thread;
- one row, several threads, a smaller weight: the weight cut by output rows,
  (threads, out / threads, in), each block multiplying the row read as a
  transposed column (an `as_strided` view, strides (0, 1, in)), which MKL
  takes as one dot product per weight row. With the weights out of cache, on
  two threads: 256 -> 1024 in 63 us (the (in, out) copy below: 70), 1024 ->
  256 in 61 (81), 256 -> 768 in 49 (65), 256 -> 256 in 23 (35); for the
  output layer the column blocks above stay faster (349 against 390 us);
- a few rows (up to 16), several threads, a smaller weight: the same blocks
  of rows, the rows read as columns side by side and the result copied back
  to rows (ROW_BLOCKS_MAX_ROWS has the numbers);
- one row, one thread: a contiguous (in, out) copy, multiplied with `addmm`
  (353 us above), unless the layer narrows (in > out): then its own layout was
  the faster one (84 against 123 us for 1024 -> 256 with the weight out of cache);
- more rows, for a large weight: the weight reordered by oneDNN, PyTorch's
  other CPU matrix library, which reads it once for all rows (467 us for five
  rows above, and faster at 64 and 320 rows too). Each such call costs about
  50 us whatever the size, so smaller weights keep the (in, out) copy. This
  goes through `torch.ops.mkldnn._linear_pointwise`, the call torch.compile
  makes for frozen linear layers on a CPU; it is probed once per process and,
  if missing or wrong, the (in, out) copy serves every row count.
Every form but oneDNN's is a copy on 2 MB pages where the system has them (`huge_pages`):
the step reads each whole, and 4 KB pages would cost a TLB miss every 4 KB.
A prepared weight serves only layers in evaluation mode without gradients. It is
remade whenever a weight or bias changes its storage or version counter (loading
and averaging write in place, which counts; writes through `.data` do not, and
attend makes none), and it is forgotten whenever a model enters training mode or
leaves it: PyTorch's fused Adam updates weights without counting versions
(measured, 2.13 CPU), so the counter alone would let validation read the
weights of an earlier step. Training, gradients, GPUs, autocast, dtypes other
than fp32 and quantized layers take the module's path.
"""

from __future__ import annotations

import functools
import weakref
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from attend.models.huge_pages import on_huge_pages

BLOCKS_MIN_ELEMENTS = 1 << 20  # an 8,000 x 256 output layer: for smaller weights one thread was as fast
# a 768 x 256 weight, the Transformer's stacked query, key and value: in a beam-5 step it took 0.43 ms per
# step by oneDNN against 0.65 ms by the (in, out) copy; a 256 x 256 weight, 0.33 against 0.28
ONEDNN_MIN_ELEMENTS = 1 << 17
# up to this many rows, weights below BLOCKS_MIN_ELEMENTS are multiplied in blocks of rows, one per thread:
# at 5 rows (a beam of 5) 256 -> 1024 took 124 us against oneDNN's 137, 1024 -> 256 97 against 140,
# 256 -> 768 96 against 109, 256 -> 256 45 against the (in, out) copy's 69; at 32 rows oneDNN was as fast
ROW_BLOCKS_MAX_ROWS = 16


def onednn_reorder(weight: torch.Tensor) -> torch.Tensor:
    """W (out, in) in oneDNN's layout for products with up to 64 rows at a time."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, 64)


def onednn_linear(rows: torch.Tensor, reordered: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """rows (n, in) @ W^T + b by oneDNN, W given by `onednn_reorder`."""
    return torch.ops.mkldnn._linear_pointwise(rows, reordered, bias, "none", [], "")


@functools.lru_cache(maxsize=None)
def onednn_available() -> bool:
    """Whether oneDNN's reordered-weight product exists here and gives nn.Linear's numbers."""
    try:
        weight, bias, x = torch.randn(24, 16), torch.randn(24), torch.randn(3, 16)
        with torch.no_grad():
            out = onednn_linear(x, onednn_reorder(weight), bias)
        return bool(torch.allclose(out, F.linear(x, weight, bias), atol=1e-4, rtol=1e-4))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class RowBlocks(NamedTuple):
    """A weight W (out, in) cut into one block of its rows per thread, for few rows on several threads."""

    threads: int
    weight: torch.Tensor  # (threads, width, in), the last block padded with zero rows
    bias: Optional[torch.Tensor]  # (threads, width, 1)
    column: tuple  # (size, stride) that read one contiguous row (1, in) as a column for every block
    padded: bool


class PreparedWeight:
    """x W^T + b for inference on a CPU, W (out, in) held in the layout that is fast for x's row count."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        self.weight, self.bias = weight.detach(), (bias.detach() if bias is not None else None)
        self._copied: Optional[Callable] = None  # the product by a copied layout, for any row count
        self._packed: Optional[torch.Tensor] = None
        self._blocks: Optional[tuple] = None  # (threads, blocks, bias blocks) for one row, a large weight
        self._row_blocks: Optional[RowBlocks] = None

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (n, in) -> (n, out)."""
        count = rows.size(0)
        if count == 1:
            return self.for_one_row()(rows.contiguous())
        threads = torch.get_num_threads()
        if count <= ROW_BLOCKS_MAX_ROWS and threads > 1 and self.weight.numel() < BLOCKS_MIN_ELEMENTS:
            return self._rows_in_row_blocks(rows.contiguous(), threads)
        if self.weight.numel() >= ONEDNN_MIN_ELEMENTS and onednn_available():
            if self._packed is None:
                self._packed = onednn_reorder(self.weight)  # a blocked layout of its own: not copied
            return onednn_linear(rows, self._packed, self.bias)
        return self._copied_layout_product()(rows)

    def for_one_row(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """This product for one contiguous row (1, in) -> (1, out) as one call, its layout chosen now
        rather than at every call: a decoding step at batch 1 makes a dozen products, and choosing costs
        a few us each."""
        threads = torch.get_num_threads()
        if threads > 1 and self.weight.numel() >= BLOCKS_MIN_ELEMENTS:
            return functools.partial(self._one_row_in_blocks, threads=threads)
        if threads > 1:
            return functools.partial(self._one_row_in_row_blocks, threads=threads)
        return self._copied_layout_product()

    def _copied_layout_product(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """rows (n, in) -> (n, out) by a copy of W: (out, in) as it is where the layer narrows (in > out;
        the faster layout for few rows there), else (in, out)."""
        if self._copied is None:
            if self.weight.size(1) > self.weight.size(0):
                self._copied = functools.partial(F.linear, weight=on_huge_pages(self.weight), bias=self.bias)
            elif self.bias is None:
                self._copied = functools.partial(torch.mm, mat2=on_huge_pages(self.weight.t()))
            else:
                self._copied = functools.partial(torch.addmm, self.bias, mat2=on_huge_pages(self.weight.t()))
        return self._copied

    def column_blocks(self, threads: int) -> tuple:
        """(threads, W's output columns in one block per thread (threads, in, width), bias blocks
        (threads, 1, width) or None); the last block is padded with zeros."""
        if self._blocks is None or self._blocks[0] != threads:
            out_size, in_size = self.weight.shape
            width = -(-out_size // threads)  # columns per block
            padded = F.pad(self.weight, (0, 0, 0, width * threads - out_size))  # (threads * width, in)
            blocks = on_huge_pages(padded.view(threads, width, in_size).transpose(1, 2))  # (threads, in, width)
            bias = None if self.bias is None else F.pad(self.bias, (0, width * threads - out_size)).view(threads, 1, width)
            self._blocks = (threads, blocks, bias)
        return self._blocks

    def _one_row_in_blocks(self, row: torch.Tensor, threads: int) -> torch.Tensor:
        """row (1, in) -> (1, out), each thread multiplying by its own block of output columns."""
        _, blocks, bias = self.column_blocks(threads)
        row = row.expand(blocks.size(0), 1, row.size(1))  # the same row for every block, no copy
        out = torch.bmm(row, blocks) if bias is None else torch.baddbmm(bias, row, blocks)  # (threads, 1, width)
        return out.view(1, -1)[:, :self.weight.size(0)]

    def row_blocks(self, threads: int) -> RowBlocks:
        """W's rows in one block per thread, made once per thread count."""
        if self._row_blocks is None or self._row_blocks.threads != threads:
            out_size, in_size = self.weight.shape
            width = -(-out_size // threads)  # rows per block; the last block is padded with zeros
            missing = width * threads - out_size
            blocks = on_huge_pages(F.pad(self.weight, (0, 0, 0, missing)).view(threads, width, in_size))
            bias = None if self.bias is None else F.pad(self.bias, (0, missing)).view(threads, width, 1)
            column = ((threads, in_size, 1), (0, 1, in_size))  # the row for every block, as a column: no copy
            self._row_blocks = RowBlocks(threads, blocks, bias, column, missing > 0)
        return self._row_blocks

    def _one_row_in_row_blocks(self, row: torch.Tensor, threads: int) -> torch.Tensor:
        """row (1, in), contiguous -> (1, out), each thread taking the dot products of the row with its
        own block of W's rows."""
        _, blocks, bias, column, padded = self.row_blocks(threads)
        column = row.as_strided(*column)
        out = torch.bmm(blocks, column) if bias is None else torch.baddbmm(bias, blocks, column)  # (threads, width, 1)
        return out.view(1, -1)[:, :self.weight.size(0)] if padded else out.view(1, -1)

    def _rows_in_row_blocks(self, rows: torch.Tensor, threads: int) -> torch.Tensor:
        """rows (n, in), contiguous, a few -> (n, out): the one-row product's blocks, the rows read as
        columns side by side, the (out, n) result copied back to rows."""
        _, blocks, bias, _, _ = self.row_blocks(threads)
        count, in_size = rows.shape
        columns = rows.as_strided((blocks.size(0), in_size, count), (0, 1, in_size))
        out = torch.bmm(blocks, columns) if bias is None else torch.baddbmm(bias, blocks, columns)  # (threads, width, n)
        return out.view(-1, count)[:self.weight.size(0)].t().contiguous()


# module -> {name: (key, value)}; weak, and outside the module, so a copy of a model never inherits it
_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cached(owner: nn.Module, name: str, key, make):
    """make() kept for `owner` under `name` until `key` changes or `forget_prepared` drops it."""
    entries = _PREPARED.setdefault(owner, {})
    hit = entries.get(name)
    if hit is None or hit[0] != key:
        hit = entries[name] = (key, make())
    return hit[1]


def keep(owner: nn.Module, name: str, value) -> None:
    """Keep `value` for `owner` under `name`, for `kept` to return unchecked."""
    _PREPARED.setdefault(owner, {})[name] = (None, value)


def kept(owner: nn.Module, name: str):
    """What `cached` keeps for `owner` under `name`, unchecked, or None."""
    hit = _PREPARED.get(owner, {}).get(name)
    return None if hit is None else hit[1]


def forget(owner: nn.Module, name: str) -> None:
    """Drop what `cached` keeps for `owner` under `name`."""
    _PREPARED.get(owner, {}).pop(name, None)


def forget_prepared(model: nn.Module) -> None:
    """Drop everything prepared for `model` and its submodules (Seq2Seq.train calls it)."""
    if len(_PREPARED):  # nothing prepared, as on every training step but the first after evaluation
        for module in model.modules():
            _PREPARED.pop(module, None)


def prepared(layer: nn.Linear) -> PreparedWeight:
    """The layer's prepared weight, remade when its weight or bias changes."""
    key = tuple((t.data_ptr(), t._version) for t in (layer.weight, layer.bias) if t is not None)
    return cached(layer, "weight", key, lambda: PreparedWeight(layer.weight, layer.bias))


def applies(layer: nn.Module, x: torch.Tensor) -> bool:
    """Inference: a layer in evaluation mode on a CPU, fp32 weights and input (the layouts above were
    measured, and oneDNN's path probed, for fp32 only), no autocast, no gradient wanted."""
    weight = getattr(layer, "weight", None)
    return (isinstance(weight, torch.Tensor) and not layer.training and not torch.is_grad_enabled()
            and weight.device.type == "cpu" and weight.dtype == torch.float32 and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu"))


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for x (..., in) -> (..., out), by the prepared weight where it applies."""
    if not applies(layer, x):
        return layer(x)
    out = prepared(layer)(x.reshape(-1, x.size(-1)))
    return out.view(*x.shape[:-1], out.size(-1))
