"""The converted-weights cache: ready-to-serve weights (adapter merged, quantised, cast) on disk.

Converting at every start costs more than loading (seconds of rounding on two cores, and the
fp32 copy doubles peak memory), so the result is written once and later starts load it directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from inference import adapters, registry
from inference.engine import cpu

logger = logging.getLogger(__name__)

CONVERTED_FORMAT = 3  # bump when the layout of converted files changes (3: one quantised-layer base class)
CONVERTED_KEEP = 4  # converted files kept in the cache (current and recent adapters/settings)


def converted_file(
    base_name: str, adapter: adapters.AdapterRef | None, cache_root: Path, dtype: str, quantize: str
) -> Path | None:
    """Where the converted weights of this combination live; None when the base is not a local
    folder. The name hashes everything that changes the result: the base files, the adapter
    files, dtype, quantisation, library versions and torch's CPU capability (the int4 packing
    is laid out for the kernels of one capability: AVX-512 blocks read as AVX2 give nonsense)."""
    import torch
    import transformers

    folder = Path(registry.model_folder(base_name, cache_root))
    if not folder.is_dir():
        return None

    def stamp(path: Path) -> list[Any]:
        if not path.is_dir():
            return []
        files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]

    key = json.dumps(
        [
            str(folder.resolve()),
            stamp(folder),
            adapter.version if adapter else None,
            stamp(Path(adapter.path)) if adapter else None,
            dtype,
            quantize,
            torch.__version__,
            transformers.__version__,
            CONVERTED_FORMAT,
            cpu.capability(),
        ]
    )
    return cache_root / "converted" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"


def save_converted(model: Any, path: Path) -> None:
    """Write the converted weights atomically (tied tensors once: loading ties them again), then
    drop all but the newest ``CONVERTED_KEEP`` files."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".converted-", dir=path.parent)
    os.close(handle)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # Each adapter version and setting adds a file: keep the newest few, not every one ever served.
    older = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in older[CONVERTED_KEEP:]:
        with contextlib.suppress(OSError):
            stale.unlink()


def load_converted(path: Path, base_name: str, cache_root: Path, dtype: str, quantize: str) -> tuple[Any, Any]:
    """(model, tokenizer) from a converted file: the model's skeleton is built without
    allocating weights, then takes the saved tensors as they are. Raises on a damaged file."""
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from inference.engine.quantisation import quantize_weight_only

    config, generation_config, tokenizer = registry.load_config_and_tokenizer(base_name, cache_root)
    with init_empty_weights():  # parameters on the meta device; buffers (rotary tables) real
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    if quantize != "none":
        quantize_weight_only(model, quantize, empty=True)
    # Tensors in a safetensors file sit at arbitrary offsets; the int8 kernel's vector loads
    # crash on a weight that is not 64-byte aligned, so such tensors get a fresh allocation.
    state = {name: t if t.data_ptr() % 64 == 0 else t.clone() for name, t in load_file(path).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise RuntimeError(f"unexpected tensors in {path.name}: {unexpected[:3]}")
    if missing:
        model.tie_weights()
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise RuntimeError(f"{path.name} does not hold every weight (missing {missing[:3]})")
    if generation_config is not None:
        model.generation_config = generation_config
    return model, tokenizer
