"""Where tensors live and in which precision: chosen from what this machine has and measures.

Machines differ: some CPUs have bf16 instructions (AVX-512 BF16, AMX) and run
bf16 matmuls faster than fp32; on AVX2-only CPUs bf16 is emulated (measured 23
times slower than fp32 on one; README, "Precision and speed switches"). So
"auto" precision on the CPU checks the instruction flags and then times one
matmul in each dtype before choosing bf16; on a GPU it takes bf16 where the
card supports it, else fp16 (with loss scaling in training).
"""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1") if given, else CUDA when available, else the CPU;
    choosing CUDA also turns cuDNN's attention kernels off for this process.

    cuDNN builds an execution plan for every new tensor shape, and
    length-bucketed batches bring new shapes throughout the first epoch. On an
    H200 (PyTorch 2.11) bf16 training ran at 27k tokens/s on batches of shapes
    seen for the first time and at 338k on the same batches run again
    (benchmarks/speed.py): consistent with such per-shape set-up, which the
    flash and memory-efficient kernels do not have. With cuDNN attention off,
    training on shapes seen for the first time measured 7-13 times faster there
    (README, "Speed").
    """
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):  # PyTorch 2.3 and later
        torch.backends.cuda.enable_cudnn_sdp(False)
    return device


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=None)
def matmul_gflops(dtype: torch.dtype, size: int = 512, repeats: int = 3, device: str = "cpu") -> float:
    """Measured GFLOP/s of a size^3 matmul in `dtype` on `device` (cached per process)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(3 if device != "cpu" else 1):  # warm up (a GPU picks its kernels on first use)
        a @ b
    synchronize(torch.device(device))
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(torch.device(device))
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that wall-clock timings include it (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> the fastest safe dtype here: fp32, bf16 or fp16; an explicit choice is kept."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        # native bf16 only (Ampere and later): older cards emulate it slowly, and take fp16 with loss scaling
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # PyTorch before 2.4 counts native support only, and has no such argument
            native = torch.cuda.is_bf16_supported()
        return "bf16" if native else "fp16"
    if device.type == "cpu" and cpu_has_bf16() and matmul_gflops(torch.bfloat16) > 1.2 * matmul_gflops(torch.float32):
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """The mixed-precision context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
