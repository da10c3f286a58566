"""Mixed-adapter batches in two matmuls per LoRA layer: the engine's fast path beside PEFT's ``adapter_names`` loop.

Per LoRA-wrapped linear layer the adapters' A matrices are stacked along the rank (A_cat: Σr × in) and their B
matrices with each adapter's scaling folded in (B_cat: out × Σr); a 0/1 mask per batch row keeps its adapter's rank
slice (all zeros for the base row), so every row's delta is ``((x @ A_cat.T) * mask) @ B_cat.T``. Exact: the same
sums as PEFT's per-adapter sub-batches, in the adapters' own dtype (PEFT upcasts bf16 adapters to fp32); with
``dtype=`` (the model's, e.g. bf16) the stacks are cast once so the delta lands in one fused add, the way vLLM
computes LoRA — the same function, rounded in that dtype. Whatever it cannot do exactly (DoRA and other
variants, LoRA on embeddings/conv, lora_bias, merged or disabled adapters, modules_to_save) is refused by
``problem`` with a one-line reason, and the engine keeps PEFT's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class Stack:
    """One layer's adapters side by side: their names and rank offsets, A_cat and the scaled B_cat."""

    names: tuple[str, ...]
    offsets: dict[str, tuple[int, int]]
    a: Any  # torch.Tensor (Σr, in)
    b: Any  # torch.Tensor (out, Σr)


def lora_layers(model) -> list[tuple[str, Any]]:
    """Every PEFT tuner layer of ``model`` (LoRA or not), by module name."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def problem(model) -> str | None:
    """Why the stacked path cannot run ``model`` exactly (None when it can); the reason fits one line."""
    if not hasattr(model, "peft_config"):
        return "no PEFT adapters loaded"
    if model.training:
        return "model in training mode (dropout would differ)"
    aux = _auxiliary_modules(model)
    if aux:
        return f"{aux}: modules_to_save / trainable tokens are per-adapter copies PEFT swaps per row"
    layers = lora_layers(model)
    if not layers:
        return "no LoRA layers found"
    for name, layer in layers:
        reason = layer_problem(layer)
        if reason:
            return f"{name}: {reason}"
    return None


def _auxiliary_modules(model) -> str | None:
    try:
        from peft.utils.other import AuxiliaryTrainingWrapper
    except ImportError:  # why: an unknown PEFT layout must fall back, not guess
        return "peft.utils.other.AuxiliaryTrainingWrapper missing"
    return next((n for n, m in model.named_modules() if isinstance(m, AuxiliaryTrainingWrapper)), None)


def layer_problem(layer) -> str | None:
    """Why one tuner layer cannot be stacked exactly (None when it can)."""
    from peft.tuners.lora import Linear

    if type(layer) is not Linear:  # why: subclasses (bnb, gptq, …) have their own forward
        return f"{type(layer).__module__}.{type(layer).__name__} layer (only plain Linear LoRA stacks)"
    if layer.merged:
        return "adapters merged into the base weights"
    if layer.disable_adapters:
        return "adapters disabled"
    if "forward" in vars(layer):
        return "forward already wrapped (accelerate offload hooks?)"
    for name in layer.lora_A:
        reason = _adapter_problem(layer, name)
        if reason:
            return f"adapter '{name}': {reason}"
    return _dtype_problem(layer)


def _adapter_problem(layer, name: str) -> str | None:
    import torch

    if getattr(layer, "use_dora", {}).get(name) or name in getattr(layer, "lora_variant", {}):
        return "DoRA or another LoRA variant"
    a, b = layer.lora_A[name], layer.lora_B[name]
    if type(a) is not torch.nn.Linear or type(b) is not torch.nn.Linear:
        return "lora_A/lora_B are not plain nn.Linear"
    if getattr(layer, "lora_bias", {}).get(name) or b.bias is not None:
        return "lora_bias"
    if name not in layer.scaling or not isinstance(layer.scaling[name], (int, float)):
        return "no scalar scaling"
    return None


def _dtype_problem(layer) -> str | None:
    weights = [m.weight for d in (layer.lora_A, layer.lora_B) for m in d.values()]
    kinds = {(w.dtype, w.device) for w in weights}
    if len(kinds) > 1:
        return f"adapters in different dtypes/devices {sorted(map(str, kinds))} cannot be stacked"
    return None


def build_stack(layer, dtype=None) -> Stack | None:
    """A_cat and B_cat (scaling folded in) over every adapter of ``layer``, in PEFT's load order; cast to
    ``dtype`` when given (None: the adapters' own)."""
    import torch

    names = tuple(layer.lora_A.keys())
    if not names:
        return None
    offsets, start = {}, 0
    for name in names:
        rank = layer.lora_A[name].weight.shape[0]
        offsets[name] = (start, start + rank)
        start += rank
    with torch.no_grad():
        a = torch.cat([layer.lora_A[n].weight for n in names], dim=0).contiguous()
        b = torch.cat([layer.lora_B[n].weight * layer.scaling[n] for n in names], dim=1).contiguous()
    if dtype is not None:
        a, b = a.to(dtype), b.to(dtype)
    return Stack(names, offsets, a, b)


def row_mask(stack: Stack, rows: tuple[str, ...]):
    """(rows, 1, Σr) 0/1 mask: row i keeps the rank slice of its adapter; base rows and absent adapters keep none.
    None when no row uses an adapter of this layer (its forward is then the base layer's alone)."""
    import torch

    if not any(name in stack.offsets for name in rows):
        return None
    mask = torch.zeros(len(rows), stack.a.shape[0], dtype=stack.a.dtype, device=stack.a.device)
    for i, name in enumerate(rows):
        if name in stack.offsets:
            lo, hi = stack.offsets[name]
            mask[i, lo:hi] = 1
    return mask[:, None, :]


def stacked_forward(base, a, b_t, mask, x, *args: Any, **kwargs: Any):
    """A LoRA layer's forward for a row-assigned batch: the base layer's output + each row's own adapter delta,
    ``((x @ A_cat.T) * mask) @ B_cat.T`` (``b_t`` = B_cat.T). Lean on purpose: it runs once per layer per step."""
    import torch

    result = base(x, *args, **kwargs)
    if x.shape[0] != mask.shape[0]:  # why: HF generate keeps the rows; beams or expansion would misassign
        raise ValueError(f"stacked LoRA: batch of {x.shape[0]} rows, adapters assigned for {mask.shape[0]}")
    h = torch.matmul(x if x.dtype == a.dtype else x.to(a.dtype), a.t())
    h.mul_(mask if h.dim() == 3 else mask.reshape(mask.shape[0], *([1] * (h.dim() - 2)), -1))
    if result.dtype == b_t.dtype and result.is_contiguous():  # one fused kernel: result + h @ B_cat.T
        return torch.addmm(result.view(-1, result.shape[-1]), h.view(-1, h.shape[-1]), b_t).view(result.shape)
    return result + torch.matmul(h, b_t).to(result.dtype)


def _forward(layer, stack: Stack | None, mask):
    """What replaces ``layer.forward`` for one batch: the base layer alone where no row uses its adapters."""
    if stack is None or mask is None:
        return layer.base_layer.__call__  # why: a bound method, so nn.Module does not register a submodule
    return partial(stacked_forward, layer.base_layer, stack.a, stack.b.t(), mask)


class Stacker:
    """Stacks of one PEFT model, built once and rebuilt when its adapters change; ``rows`` installs them."""

    def __init__(self, model, dtype=None) -> None:
        self.model, self.dtype = model, dtype
        self.reason: str | None = "not checked yet"
        self.layers: list = []
        self._keys: list[tuple[str, ...]] | None = None
        self._stacks: list[Stack | None] = []
        self._masks: dict[tuple[str, ...], list] = {}
        self._refresh()

    def _refresh(self) -> None:
        keys = [tuple(layer.lora_A.keys()) for layer in self.layers]
        if keys == self._keys:
            return
        self.reason = problem(self.model)  # why: an adapter loaded or deleted since the last batch
        self.layers = [layer for _, layer in lora_layers(self.model)] if self.reason is None else []
        self._keys = [tuple(layer.lora_A.keys()) for layer in self.layers]
        self._stacks = [build_stack(layer, self.dtype) for layer in self.layers]
        self._masks = {}

    def masks(self, rows: tuple[str, ...]) -> list:
        """Per layer mask for this row assignment; layers with the same adapter layout share one tensor."""
        if rows not in self._masks:
            if len(self._masks) > 8:  # why: a few column sets in practice, never an unbounded cache
                self._masks = {}
            shared: dict[tuple, Any] = {}
            for s in self._stacks:
                if s is not None and _layout(s) not in shared:
                    shared[_layout(s)] = row_mask(s, rows)
            self._masks[rows] = [None if s is None else shared[_layout(s)] for s in self._stacks]
        return self._masks[rows]

    def why_not(self, adapter_names: list[str]) -> str | None:
        """Why this batch goes through PEFT's path instead (None: stacked); cheap, checked on every batch."""
        self._refresh()
        if self.reason:
            return self.reason
        unknown = set(adapter_names) - {PEFT_BASE} - {n for k in self._keys for n in k}
        if unknown:
            return f"unknown adapter(s) {sorted(unknown)}"
        changed = next((layer for layer in self.layers if layer.merged or layer.disable_adapters
                        or "forward" in vars(layer)), None)
        return None if changed is None else f"a LoRA layer was merged, disabled or wrapped: {layer_problem(changed)}"

    @contextmanager
    def rows(self, adapter_names: list[str]) -> Iterator[dict]:
        """Yields the kwargs for the model call: {} with row i of every forward on ``adapter_names[i]``
        (``__base__``: no adapter) while inside, or PEFT's ``adapter_names`` when stacking does not apply."""
        if self.why_not(adapter_names):
            yield {"adapter_names": list(adapter_names)}
            return
        masks = self.masks(tuple(adapter_names))
        try:
            for layer, stack, mask in zip(self.layers, self._stacks, masks, strict=True):
                layer.forward = _forward(layer, stack, mask)
            yield {}
        finally:
            for layer in self.layers:
                vars(layer).pop("forward", None)


def _layout(stack: Stack) -> tuple:
    return (stack.a.dtype, stack.a.device, tuple(stack.offsets.items()))
