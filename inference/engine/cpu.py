"""What the processor offers, and the ``auto`` dtype/quantisation that follows from it.

bf16 + int4 weight-only pays where the CPU has native bf16 (AVX-512 BF16 or AMX): BENCHMARKS.md's
figures come from such a CPU. On an AVX2-only CPU (AMD EPYC, torch capability ``AVX2``), measured
with ``bench/generation.py --rounds 1`` and a prefill probe on a shared 2-core machine: bf16 +
int4 decodes faster than fp32 (23.0 against 10.0 tok/s in one run; 16.9 against 14.7 in issue 14)
but its prefill is slower, because bf16 is emulated there and prefill is compute-bound: TTFT on a
600-token prompt 5.0-7.0 s against fp32's 2.6-3.9 s, on a 40-token prompt 0.50-0.56 s against
0.24-0.41 s. Grounded prompts are 400-600 tokens and time to first token is what people feel, so
``auto`` keeps fp32 there. int8/int4 with fp32 activations are far slower still on AVX2 (fp32 +
int8: 4.2 tok/s, TTFT 4.8 s). So ``auto`` never picks a path slower than plain fp32.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# Native bf16 dot products: the AVX-512 BF16 extension or AMX tiles.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@functools.cache
def capability() -> str:
    """torch's own view of the CPU ("AVX2", "AVX512", "DEFAULT", ...); imports torch."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def describe() -> dict[str, object]:
    """What benchmarks record beside each result."""
    interesting = sorted(cpu_flags() & {"avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", *BF16_FLAGS})
    return {"model": cpu_model(), "torch_capability": capability(), "flags": interesting}


def auto_choice() -> tuple[str, str]:
    """(dtype, quantize) for this CPU: bf16 + int4 with AVX-512 and native bf16, fp32 otherwise."""
    flags = cpu_flags()
    if capability().startswith("AVX512") and flags & BF16_FLAGS:
        return "bfloat16", "int4"
    return "float32", "none"


def resolve_auto(
    dtype: str, quantize: str, adapter: bool = False, measured: tuple[str, str] | None = None
) -> tuple[str, str]:
    """Explicit values pass through; ``auto`` in either becomes this CPU's choice for it.

    With a LoRA adapter, ``auto`` never quantises: the adapter is merged into the weights, and
    int4's rounding erases its small deltas. Measured with run-2 (trained to answer from the
    passages) on an AVX-512 BF16 Xeon: bf16 + int4 answered like the base model and failed the
    faithfulness gate; bf16 alone, bf16 + int8 and fp32 kept the adapter's answers.

    ``measured``: the choice timed on this machine for this model and adapter, when there is one."""
    if "auto" not in (dtype, quantize):
        return dtype, quantize
    if measured is not None:  # timed on this machine (engine/choice.py): better than any rule
        auto_dtype, auto_quantize = measured
    else:
        auto_dtype, auto_quantize = auto_choice()
        if adapter:
            auto_quantize = "none"
    chosen = (auto_dtype if dtype == "auto" else dtype, auto_quantize if quantize == "auto" else quantize)
    logger.info("Engine auto settings for %s (%s): dtype=%s quantize=%s", cpu_model(), capability(), *chosen)
    return chosen
