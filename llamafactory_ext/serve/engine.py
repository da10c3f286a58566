"""One resident base model and its LoRA adapters, answering one prompt in every column from a single batched
``generate``: row i carries column i's adapter through stacked LoRA matmuls (serve/stacked.py), or through PEFT's
mixed-adapter batch (``adapter_names=["__base__", …]``) where stacking would not be exact or is switched off
(``Engine(lora_batch="peft")`` or LFX_LORA_BATCH=peft). Not for DoRA.

LF loads the base exactly as its chat/api would (``get_infer_args`` on the chat recipe without the adapter, its
template with the recipe's ``enable_thinking``); PEFT adds each adapter under its column name.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

BASE = "base"
PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
LORA_BATCH_ENV = "LFX_LORA_BATCH"  # how a batch mixes adapters, one of LORA_BATCHES (default: the first)
LORA_BATCHES = {
    "stacked": "stacked matmuls in the adapters' dtype (fp32 as PEFT loads them): PEFT's sums exactly",
    "stacked-model-dtype": "stacked matmuls cast once to the model's dtype (bf16 on a GPU): fewer kernels",
    "peft": "PEFT's own mixed batch, a loop over the adapters in every layer (the old path)",
}


def _lora_batch_default() -> str:
    return os.environ.get(LORA_BATCH_ENV, "").strip().lower() or next(iter(LORA_BATCHES))


@dataclass
class Settings:
    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.95
    greedy: bool = False
    thinking: bool = True


@dataclass
class Answer:
    column: str
    text: str
    tokens: int
    ttft: float
    latency: float


@dataclass
class Engine:
    """Lazy: nothing heavy happens until load(); a broken adapter disables its column with a message."""

    recipe: dict
    adapters: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    state: str = "not loaded"
    lora_batch: str = field(default_factory=_lora_batch_default)

    def __post_init__(self) -> None:
        if self.lora_batch not in LORA_BATCHES:
            raise UsageError(f"LoRA batch mode '{self.lora_batch}' (from {LORA_BATCH_ENV}?) is none of "
                             f"{', '.join(LORA_BATCHES)}")
        self.lock = threading.Lock()  # why: one generation at a time on one resident model
        self.model = self.tokenizer = self.template = self.stacker = None
        self.batching = "not loaded"  # how the last batch mixed adapters: a LORA_BATCHES key or "peft: <reason>"

    @property
    def columns(self) -> list[str]:
        return [BASE] + [n for n in self.adapters if n not in self.errors]

    def load(self) -> None:
        if self.model is not None:
            return
        self.state = "loading base"
        self._load_base()
        for name, path in self.adapters.items():
            problem = adapter_problem(Path(path), self.recipe["model_name_or_path"])
            if problem:
                self.errors[name] = problem
                continue
            self._add_adapter(name, path)
        self._set_batching()
        self.state = f"loaded: base + {len(self.columns) - 1} adapter(s); LoRA batch: {self.batching}"

    def twin(self, lora_batch: str) -> Engine:
        """This loaded model and its adapters under another LoRA batch mode (to compare modes, no second copy)."""
        other = Engine(self.recipe, self.adapters, dict(self.errors), self.state, lora_batch)
        other.model, other.tokenizer, other.template = self.model, self.tokenizer, self.template
        other._set_batching()
        return other

    def _set_batching(self) -> None:
        from .stacked import Stacker

        if not hasattr(self.model, "peft_config"):
            self.batching = "no adapters"
        elif self.lora_batch == "peft":
            self.batching = f"peft: chosen (lora_batch=peft or {LORA_BATCH_ENV}=peft)"
        else:
            dtype = getattr(self.model, "dtype", None) if self.lora_batch == "stacked-model-dtype" else None
            self.stacker = Stacker(self.model, dtype)
            self.batching = self.lora_batch if self.stacker.reason is None else f"peft: {self.stacker.reason}"

    def _load_base(self) -> None:
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.hparams import get_infer_args
        from llamafactory.model import load_model, load_tokenizer

        args = {k: v for k, v in self.recipe.items() if k not in ("adapter_name_or_path", "infer_backend")}
        model_args, data_args, finetuning_args, _ = get_infer_args(args)
        tokenizer = load_tokenizer(model_args)["tokenizer"]
        before = len(tokenizer)
        self.template = get_template_and_fix_tokenizer(tokenizer, data_args)
        if len(tokenizer) != before:
            raise UsageError(f"template '{data_args.template}' adds {len(tokenizer) - before} token(s) this model's "
                             "vocabulary lacks — it is not this model's template; use the chat recipe build_recipe "
                             "wrote for this model (key: template)")
        self.tokenizer = tokenizer
        self.model = load_model(tokenizer, model_args, finetuning_args, is_trainable=False)

    def _add_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        try:
            if not hasattr(self.model, "load_adapter") or not hasattr(self.model, "peft_config"):
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            else:
                self.model.load_adapter(path, adapter_name=name)
        except (RuntimeError, ValueError, OSError) as exc:  # shape mismatch = trained on another base
            self.errors[name] = f"adapter {path} does not fit this base ({_first_line(exc)}) — pass an adapter trained on {self.recipe['model_name_or_path']}"

    def prompt_ids(self, prompt: str, thinking: bool) -> list[int]:
        self.template.enable_thinking = thinking
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
        ids, _ = self.template.encode_oneturn(self.tokenizer, messages, self.recipe.get("default_system"))
        return ids

    def generate(self, prompt: str, settings: Settings, columns: list[str], streamer_factory=None):
        """Run one batched generate over ``columns``; returns (answers, streamer). Blocks the engine lock."""
        import torch

        from .streamer import BatchStreamer

        with self.lock:
            ids = self.prompt_ids(prompt, settings.thinking)
            batch = torch.tensor([ids] * len(columns), device=self.model.device)
            streamer = (streamer_factory or BatchStreamer)(self.tokenizer, len(columns), self._stop_ids())
            kwargs = self._gen_kwargs(settings)
            with torch.inference_mode(), self._adapter_rows(columns) as adapter_kwargs:
                self.model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), streamer=streamer,
                                    **adapter_kwargs, **kwargs)
        return [Answer(c, streamer.texts[i], len(streamer.tokens[i]), streamer.first[i] or 0.0,
                       streamer.finished[i] or 0.0) for i, c in enumerate(columns)], streamer

    def probe_logits(self, prompt: str, columns: list[str]) -> list[list[float]]:
        """Last-position logits of the probe prompt in every column (for the self-test)."""
        import torch

        with self.lock, torch.inference_mode(), self._adapter_rows(columns) as adapter_kwargs:
            ids = self.prompt_ids(prompt, True)
            batch = torch.tensor([ids] * len(columns), device=self.model.device)
            out = self.model(input_ids=batch, **adapter_kwargs)
        return out.logits[:, -1, :].float().tolist()

    @contextmanager
    def _adapter_rows(self, columns: list[str]):
        """Row i on column i's adapter for the model calls inside; yields the kwargs those calls take."""
        if not hasattr(self.model, "peft_config"):
            yield {}
            return
        names = [PEFT_BASE if c == BASE else c for c in columns]
        if self.stacker is None:
            yield {"adapter_names": names}
            return
        with self.stacker.rows(names) as kwargs:
            self.batching = self.lora_batch if not kwargs else f"peft: {self.stacker.why_not(names)}"
            yield kwargs

    def _gen_kwargs(self, s: Settings) -> dict:
        from transformers import GenerationConfig

        sample = not s.greedy and s.temperature > 0
        cfg = {"max_new_tokens": s.max_new_tokens, "do_sample": sample, "pad_token_id": self.tokenizer.pad_token_id,
               "eos_token_id": self._stop_ids()}
        if sample:
            cfg.update(temperature=s.temperature, top_p=s.top_p)
        return {"generation_config": GenerationConfig(**cfg)}

    def _stop_ids(self) -> list[int]:
        return self.template.get_stop_token_ids(self.tokenizer)


def adapter_problem(path: Path, base: str) -> str | None:
    """Why an adapter folder cannot be served beside ``base`` (None when it looks right)."""
    cfg_path = path / "adapter_config.json"
    if not path.is_dir():
        return f"adapter {path}: no such folder — pass NAME=PATH with the output_dir of a LoRA training run"
    if not cfg_path.is_file():
        return f"adapter {path}: no adapter_config.json — not a LoRA adapter folder (a checkpoint-* or merged model?)"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{cfg_path}: unreadable ({_first_line(exc)}) — retrain or restore the adapter"
    if cfg.get("use_dora"):
        return f"adapter {path}: DoRA adapters cannot share a mixed batch — merge it and compare as a separate model"
    trained_on = str(cfg.get("base_model_name_or_path") or "")
    if trained_on and not _same_model(trained_on, base):
        return (f"adapter {path} was trained on '{trained_on}', not on this base '{base}' — pass the matching "
                "--recipe, or an adapter of this base")
    return None


def _same_model(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return pa.name.lower() == pb.name.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
