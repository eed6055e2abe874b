"""Copies of inference weights on 2 MB memory pages, so that reading them misses the TLB less.

A decoding step at batch 1 reads every weight of the decoder once and little
else: 17.6 MB for the Multi30k Transformer, in a dozen products of 0.26 to 8 MB.
On 4 KB pages that is some 4,300 pages per step, each a TLB miss, and inside a
virtual machine each miss walks two page tables. On 2 MB pages it is nine.
Measured on this project's 2-core EPYC VM: a step of that model took 2.10 ms
with the weights it streams on 2 MB pages against 2.25 ms on 4 KB pages.

Linux gives an anonymous mapping 2 MB pages when it is 2 MB-aligned and asked to
with madvise(MADV_HUGEPAGE) (transparent huge pages, in their default
"madvise" mode). Weights are packed one after another into such mappings
(`Arena`); elsewhere, or with ATTEND_HUGE_PAGES=0, `on_huge_pages` returns the
tensor unchanged. A mapping is released when the last tensor in it is, except the
arena's current one, which stays for the next copies (16 MB, or one larger weight).
"""

from __future__ import annotations

import mmap
import os
import threading

import torch

HUGE_PAGE = 2 << 20
SLAB_BYTES = 16 << 20  # one mapping holds the big weights of a small model; larger weights get their own
ALIGN = 64  # bytes: a cache line, the alignment PyTorch's own CPU allocator gives


def available() -> bool:
    """Whether this system can be asked for transparent huge pages, and the user has not said no."""
    return hasattr(mmap, "MADV_HUGEPAGE") and os.environ.get("ATTEND_HUGE_PAGES", "1") != "0"


class Arena:
    """Bump allocation of bytes from 2 MB-aligned anonymous mappings advised to use huge pages."""

    def __init__(self):
        self._slab = None  # (bytes tensor over the mapping, next free offset)
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> torch.Tensor:
        """nbytes of fresh memory as a uint8 tensor, 64-byte aligned."""
        with self._lock:
            if self._slab is None or self._slab[1] + nbytes > self._slab[0].numel():
                self._slab = (self._map(max(SLAB_BYTES, -(-nbytes // HUGE_PAGE) * HUGE_PAGE)), 0)
            memory, start = self._slab
            self._slab = (memory, -(-(start + nbytes) // ALIGN) * ALIGN)
            return memory[start:start + nbytes]

    @staticmethod
    def _map(nbytes: int) -> torch.Tensor:
        """A mapping of nbytes starting on a 2 MB boundary (one page more is mapped to find one)."""
        mapping = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            mapping.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # a kernel without transparent huge pages: the memory works on ordinary pages
            pass
        memory = torch.frombuffer(mapping, dtype=torch.uint8)  # keeps the mapping alive while any view lives
        start = -memory.data_ptr() % HUGE_PAGE
        return memory[start:start + nbytes]


_ARENA = Arena()


def on_huge_pages(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of a CPU tensor in huge-page memory; where there is none, the tensor made contiguous
    (itself if it is)."""
    if not available() or tensor.device.type != "cpu" or tensor.numel() == 0:
        return tensor.contiguous()
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor, usable in and out of inference mode
        source = tensor.detach().contiguous()
        nbytes = source.numel() * source.element_size()
        copy = _ARENA.take(nbytes).view(source.dtype).view(source.shape)
        return copy.copy_(source)
