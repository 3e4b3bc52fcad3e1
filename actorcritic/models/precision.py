"""Which arithmetic a CNN encoder runs in: `model.precision` (auto, float32, bfloat16).

bfloat16 runs the encoder's convolutions and dense layer under autocast; parameters, heads,
losses and the optimizer stay float32. It pays only on a CPU that computes bfloat16 itself
(Intel AMX or AVX512-BF16); elsewhere it is emulated and slower. `auto` picks it there,
for CNN encoders on the CPU, because on such a CPU `pong-a2c-tuned` reached its training
mean of 18 sooner in bfloat16 than in float32 on both seeds measured, and played as well
(docs/BENCHMARKS.md, Pong). An MLP encoder, a GPU or a CPU without native bfloat16 gets
float32. The choice is named at start; it is not bit-equal to float32, so a run resumed on
another kind of CPU continues in that CPU's precision.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
