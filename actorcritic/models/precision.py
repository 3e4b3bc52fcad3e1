"""Which arithmetic a network runs in: `model.precision` (auto, float32, bfloat16).

bfloat16 runs the encoder's convolutions and dense layer under autocast; parameters, heads,
losses and the optimizer stay float32. It pays only on a CPU that computes bfloat16 itself
(Intel AMX or AVX512-BF16); elsewhere it is emulated and slower. `auto` picks it there,
for CNN encoders on the CPU, because on such a CPU `pong-a2c-tuned` reached its training
mean of 18 sooner in bfloat16 than in float32 on both seeds measured, and played as well
(docs/BENCHMARKS.md, Pong). An MLP encoder, a GPU or a CPU without native bfloat16 gets
float32. The choice is named at start; it is not bit-equal to float32, so a run resumed on
another kind of CPU continues in that CPU's precision.

SAC's and TD3's networks are MLPs of 256 units whose learning step is almost all matrix
products. For them `model.precision: bfloat16` (never `auto`: not yet shown to learn as
well) has oneDNN compute every float32 matrix product of the run in bfloat16, with float32
inputs, outputs and accumulation, as TF32 does on a GPU (`bfloat16_matrix_products`).

Every process of a run also flushes subnormal floats to zero (`run.flush_denormals`, on by
default; `flush_denormals`): the Adam and RMSprop moments of a unit whose gradient is zero
(a dead ReLU) decay geometrically through the subnormal range, below 1.2e-38, where x86
arithmetic on them takes a slow path (hopper-td3's gradient step ran 1.39x faster once
they were flushed, docs/BENCHMARKS.md). TensorFlow runs its CPU kernels this way.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

# /proc/cpuinfo flag -> the name the start line uses, fastest first
NATIVE_BFLOAT16_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux /proc/cpuinfo); empty where that cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bfloat16(flags: Iterable[str] | None = None) -> str | None:
    """"AMX" or "AVX512-BF16" when the CPU computes bfloat16 natively, else None."""
    have = cpu_flags() if flags is None else frozenset(flags)
    return next((name for flag, name in NATIVE_BFLOAT16_FLAGS if flag in have), None)


@dataclass(frozen=True)
class EncoderPrecision:
    """What an encoder computes in, why, and whether the start line says so (bfloat16
    always; float32 only where `auto` chose it for a CNN, so that the user sees why)."""

    dtype: str          # "float32" or "bfloat16"
    why: str            # "model.precision=auto: this CPU has AMX"
    said: bool = True

    def line(self) -> str | None:
        return f"encoder in {self.dtype} ({self.why})" if self.said else None


def encoder_precision(setting: str, cnn: bool, device_type: str = "cpu",
                      native: str | None = None) -> EncoderPrecision:
    """The precision `model.precision=setting` gives; `native` is `native_bfloat16()`."""
    if setting != "auto":
        return EncoderPrecision(setting, f"model.precision={setting}", setting != "float32")
    if not cnn:
        return EncoderPrecision("float32", "model.precision=auto: not a CNN encoder", False)
    if device_type != "cpu":
        return EncoderPrecision("float32", f"model.precision=auto: on {device_type}")
    if native is None:
        return EncoderPrecision("float32", "model.precision=auto: this CPU has no native "
                                "bfloat16")
    return EncoderPrecision("bfloat16", f"model.precision=auto: this CPU has {native}")


@contextlib.contextmanager
def bfloat16_matrix_products(enabled: bool = True) -> Iterator[None]:
    """Inside, oneDNN computes the CPU's float32 matrix products (linear layers forward and
    backward) in bfloat16: float32 in and out, products rounded to bfloat16, sums in
    float32. The setting is the process's, so it is put back on the way out. A CPU
    without bfloat16 support in oneDNN keeps float32."""
    if not enabled:
        yield
        return
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before


def flush_denormals(enabled: bool) -> str | None:
    """Set this thread's subnormal mode (x86 FTZ and DAZ: subnormal results and inputs read
    as zero) and return the start line that names it, or None where there is nothing to say
    (off, as asked). Threads started afterwards inherit the mode, so it is set before the
    run's torch thread pool starts; a pool that a process started earlier keeps its mode.
    Only values below 1.2e-38 change: an optimizer moment that small moves no weight."""
    supported = torch.set_flush_denormal(enabled)
    if not enabled:
        return None
    if not supported:
        return ("run.flush_denormals=true has no effect: this CPU cannot flush subnormal "
                "floats to zero")
    return ("subnormal floats flushed to zero (run.flush_denormals=true: optimizer moments "
            "of dead units decay into them, where x86 arithmetic takes a slow path)")


def subnormals_flushed() -> bool:
    """Whether this thread reads subnormal floats as zero now (torch has no getter)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def matrix_products_line(device_type: str, native: str | None) -> str:
    """The start line of a SAC or TD3 run with `model.precision=bfloat16`."""
    if device_type != "cpu":
        return (f"model.precision=bfloat16 sets the CPU's matrix products; on "
                f"{device_type} the networks run in float32")
    why = f"this CPU has {native}" if native else ("this CPU has no native bfloat16: "
                                                   "oneDNN emulates it or keeps float32, "
                                                   "and it does not pay")
    return (f"matrix products in bfloat16 (model.precision=bfloat16; float32 parameters, "
            f"inputs and sums; {why})")
