"""Weight-only quantisation of a model's linear layers: int8 per output channel, or int4 in
groups of 32 with an exact-rescoring output head.

The layer classes are built on first use so that importing this module never imports torch.
Activations stay in the model's dtype; the matmuls are PyTorch's own weight-only CPU kernels
(the ones gpt-fast and torchao use). Dynamic int8 (activations quantised too) broke SmolLM2's
answers (greedy agreement with fp32 0.43); weight-only keeps them (0.94, BENCHMARKS.md). These
kernels are fast with AVX-512 and slow on AVX2-only CPUs: ``cpu.auto_choice`` only picks them
where they pay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

INT4_GROUP = 32  # weights per int4 scale/offset: the block size of the GGUF Q4_1 weights SmolLM2 ships in
SHORTLIST = 128  # candidates the int4 output head hands to exact rescoring
MODES = ("int8", "int4")


@functools.cache
def layer_classes() -> dict[str, Any]:
    """{"int8": ..., "int4": ..., "shortlist": ...}: the quantised layer classes, built once."""
    import torch

    class WeightOnlyLinear(torch.nn.Module):
        """What the int8 and int4 layers share: shapes, bias, the reshape around the kernel,
        and loading the kernel's packed tensors as saved."""

        kind = ""
        packed = ("bias",)  # buffers saved in the converted file, in the layer's own layout

        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            """An empty layer of the right shapes (loading a converted model fills it)."""
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.register_buffer("bias", torch.empty(out_features) if bias else None)

        def _matmul(self, flat: torch.Tensor) -> torch.Tensor:
            raise NotImplementedError

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            out = self._matmul(x.reshape(-1, self.in_features).contiguous())
            if self.bias is not None:
                out = out + (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
            return out.reshape(*shape[:-1], self.out_features)

        def _load_from_state_dict(
            self, state_dict: dict, prefix: str, local_metadata: Any, strict: bool, missing: list, *args: Any
        ) -> None:
            # Packed shapes are the kernel's business: take the saved tensors as they are.
            for name in self.packed:
                key = prefix + name
                if key in state_dict:
                    setattr(self, name, state_dict[key])
                elif getattr(self, name) is not None:
                    missing.append(key)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind} weight-only"

    class Int8WeightOnlyLinear(WeightOnlyLinear):
        """int8 weights, one scale per output channel; ``aten._weight_int8pack_mm`` reads them
        directly: half the memory traffic of bf16."""

        kind = "int8"
        packed = ("weight_int8", "scale", "bias")

        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            super().__init__(in_features, out_features, bias)
            self.register_buffer("weight_int8", torch.empty(out_features, in_features, dtype=torch.int8))
            self.register_buffer("scale", torch.empty(out_features))

        @classmethod
        def quantise(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int8WeightOnlyLinear:
            """Per output channel: scale = max|w| / 127, so each weight is off by at most half a step."""
            weight = weight.detach().float()  # [out, in]
            layer = cls(weight.shape[1], weight.shape[0], bias is not None)
            scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            quantised = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            # The kernel reads rows directly: a strided weight (some loaders leave views) gives garbage.
            layer.weight_int8 = quantised.contiguous()
            layer.scale = scale
            if bias is not None:
                layer.bias = bias.detach().float().clone()
            return layer

        def _matmul(self, flat: torch.Tensor) -> torch.Tensor:
            scale = self.scale if self.scale.dtype == flat.dtype else self.scale.to(flat.dtype)
            return torch.ops.aten._weight_int8pack_mm(flat, self.weight_int8, scale)

    class Int4WeightOnlyLinear(WeightOnlyLinear):
        """Groups of 32 weights share a scale and an offset (asymmetric); the matmul is
        ``aten._weight_int4pack_mm_for_cpu``.

        Why it pays for SmolLM2: its packaged weights *are* GGUF Q4_1 (groups of 32 with a
        scale and a minimum), so this grid holds them exactly (only the bf16 rounding of scales
        and offsets remains), at a quarter of the bytes of bf16. Other models and merged adapters
        are not on that grid: for them int4 is an ordinary lossy 4-bit quantisation."""

        kind = "int4"
        packed = ("weight_int4", "scales_and_zeros", "bias")

        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            super().__init__(in_features, out_features, bias)
            self.register_buffer("weight_int4", torch.empty(0, dtype=torch.uint8))
            self.register_buffer("scales_and_zeros", torch.empty(0))

        @classmethod
        def quantise(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int4WeightOnlyLinear:
            weight = weight.detach().float()  # [out, in]
            out_features, in_features = weight.shape
            layer = cls(in_features, out_features, bias is not None)
            groups = weight.reshape(out_features, in_features // INT4_GROUP, INT4_GROUP)
            low = groups.amin(dim=-1, keepdim=True)
            scale = ((groups.amax(dim=-1, keepdim=True) - low) / 15).clamp(min=1e-10)
            quantised = torch.round((groups - low) / scale).clamp_(0, 15).to(torch.int32)
            layer.weight_int4 = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                quantised.reshape(out_features, in_features).contiguous(), 2
            )
            # The kernel computes (q - 8) * scale + zero, so zero = minimum + 8 * scale.
            scale, low = scale.squeeze(-1), low.squeeze(-1)  # [out, groups]
            layer.scales_and_zeros = torch.stack([scale.t(), (low + 8 * scale).t()], dim=-1).contiguous()
            if bias is not None:
                layer.bias = bias.detach().float().clone()
            return layer

        def _matmul(self, flat: torch.Tensor) -> torch.Tensor:
            table = self.scales_and_zeros
            if table.dtype != flat.dtype:
                table = table.to(flat.dtype)
            return torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight_int4, INT4_GROUP, table)

    class ShortlistHead(Int4WeightOnlyLinear):
        """An output head tied to the token embeddings, in two stages: int4 logits for the whole
        vocabulary (the largest matrix of a small model), then exact logits, from the embedding
        rows the model keeps anyway, for the 128 best.

        The greedy choice is the exact one whenever the exact best token is among int4's 128 best
        (int4 errs by ~11 % of the logits' spread, far less than the gap to rank 128); tokens
        outside the shortlist keep approximate values, and those never win."""

        exact_source: list[Any]  # [the input embedding module], set by quantize_weight_only

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = super().forward(x)
            weight = self.exact_source[0].weight
            flat_x = x.reshape(-1, self.in_features)
            flat = logits.reshape(-1, self.out_features)
            top = flat.topk(min(SHORTLIST, self.out_features), dim=-1).indices  # [rows, k]
            exact = torch.bmm(weight[top], flat_x.to(weight.dtype).unsqueeze(-1)).squeeze(-1)
            return flat.scatter(1, top, exact.to(flat.dtype)).reshape(logits.shape)

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, exact top-{SHORTLIST} from the tied embeddings"

    return {"int8": Int8WeightOnlyLinear, "int4": Int4WeightOnlyLinear, "shortlist": ShortlistHead}


def _int4_fits(in_features: int, out_features: int) -> bool:
    """The CPU int4 kernel packs whole groups and tiles of rows."""
    return in_features % (INT4_GROUP * 2) == 0 and out_features % 8 == 0


def quantize_weight_only(model: Any, mode: str, empty: bool = False) -> int:
    """Quantise the model's linear layers in place for ``mode`` ("int8" or "int4"); returns how many.

    Run it on the fp32 (merged) weights, before casting the rest of the model to bf16, so the
    scales come from exact weights. ``empty`` makes layers of the right shapes only, for loading
    an already converted model.

    In int4 mode the output head is special: SmolLM2 ties it to the token embeddings, which the
    GGUF keeps at 8 bits (Q8_0), and plain 4 bits there costs answers (≈11 % relative error on
    the logits). A tied head becomes a two-stage int4 + exact-rescoring head; an untied one, and
    layers the int4 kernel cannot pack, get int8."""
    if mode not in MODES:
        raise ValueError(f"unknown quantisation {mode!r}")
    if mode == "int8":
        return _swap_linear_layers(model, lambda child, weight: "int8", empty)
    head = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    # An empty (meta) skeleton may not share the tensor yet: the config says whether it will.
    tied = head is not None and embeddings is not None
    tied = tied and (head.weight is embeddings.weight or bool(getattr(model.config, "tie_word_embeddings", False)))

    def choose(child: Any, weight: Any) -> str:
        if not _int4_fits(weight.shape[1], weight.shape[0]):
            return "int8"
        if child is head:
            return "shortlist" if tied else "int8"
        return "int4"

    swapped = _swap_linear_layers(model, choose, empty)
    new_head = model.get_output_embeddings()
    if isinstance(new_head, layer_classes()["shortlist"]):
        new_head.exact_source = [embeddings]  # a plain reference: the weights are saved once
    return swapped


def _swap_linear_layers(model: Any, choose: Callable[[Any, Any], str], empty: bool) -> int:
    """Swap every ``nn.Linear`` (and GPT-2's ``Conv1D``, which Linear-only quantisers skip) for
    the layer class ``choose(child, weight)`` names, in place; returns how many were swapped."""
    import torch
    from transformers.pytorch_utils import Conv1D

    classes = layer_classes()
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                weight = child.weight
            elif isinstance(child, Conv1D):  # weight is [in, out]: x @ W + b
                weight = child.weight.t()
            else:
                continue
            layer_class = classes[choose(child, weight)]
            if empty:
                replacement = layer_class(weight.shape[1], weight.shape[0], child.bias is not None)
            else:
                replacement = layer_class.quantise(weight, child.bias)
            setattr(parent, name, replacement)
            swapped += 1
    return swapped
