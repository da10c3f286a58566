"""Pure pre-flight checks (RUN flow: probe → Facts → **check** → problems, notes, summary).

Each check reads LF args and probed Facts and returns Problems naming the LF key and the fix. No I/O.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from typing import Any

from .ladder import global_batch
from .preflight import CORE, DISK_MARGIN, LF_VERSION, Facts, Problem

GPU_ONLY = ("bf16", "fp16", "pure_bf16", "quantization_bit", "deepspeed", "enable_liger_kernel")
NEEDS = {"enable_liger_kernel": ("liger-kernel",), "quantization_bit": ("bitsandbytes",),
         "deepspeed": ("deepspeed",), "predict_with_generate": ("jieba", "nltk", "rouge-chinese")}
# LF saves weights under these names in output_dir; with no checkpoint-* beside them it refuses to start
LF_CHECKPOINT_NAMES = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin",
                       "model.safetensors.index.json", "pytorch_model.bin.index.json")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def world_size(facts: Facts) -> int:
    return int(os.environ.get("NPROC_PER_NODE") or max(1, len(facts.gpus)))


def packages(args: dict[str, Any], facts: Facts) -> list[Problem]:
    found = [Problem(f"package {n}", "not installed", "pip install -e . (the pinned stack)")
             for n in CORE if facts.versions.get(n) is None]
    lf = facts.versions.get("llamafactory")
    if lf and lf != LF_VERSION:
        found.append(Problem("package llamafactory", f"version {lf}; this package is built for {LF_VERSION}",
                             f"pip install llamafactory=={LF_VERSION}"))
    for key, names in NEEDS.items():
        if args.get(key):
            found += [Problem(key, f"needs the package {n}, not installed", f"pip install {n}, or unset {key}")
                      for n in names if facts.versions.get(n) is None]
    return found


def device(args: dict[str, Any], facts: Facts) -> list[Problem]:
    if not facts.gpus:
        return [Problem(k, f"{k}: {args[k]} needs a CUDA GPU; none is visible", f"set {k}=false (or null) for CPU")
                for k in GPU_ONLY if args.get(k)]
    need, free = facts.memory_estimate_gib, min(g["free"] for g in facts.gpus) / 2**30
    if need and need > free:
        return [Problem("per_device_train_batch_size", f"the recipe's estimate is ~{need:.1f} GiB per GPU but "
                        f"only {free:.1f} GiB is free", "lower per_device_train_batch_size or cutoff_len, free "
                        "the GPU, or rebuild the recipe with --gpu for this card")]
    return []


def model(args: dict[str, Any], facts: Facts) -> list[Problem]:
    path = str(args.get("model_name_or_path", ""))
    if not path:
        return [Problem("model_name_or_path", "missing", "set it to a local model folder or a hub id")]
    if facts.model_dir:
        return [] if facts.model_config else [Problem("model_name_or_path", f"{path} has no config.json",
                                                      "point it at the folder holding config.json")]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if HUB_ID.fullmatch(path) and not path.startswith((".", "~")) and not offline:
        return []  # a hub id: downloaded at launch
    return [Problem("model_name_or_path", f"{path}: no such folder" + (" (HF_HUB_OFFLINE=1)" if offline else ""),
                    "fix the path (relative paths resolve from the launch folder) or use a hub id online")]


def datasets(args: dict[str, Any], facts: Facts) -> list[Problem]:
    if not facts.info_exists:
        return [Problem("dataset_dir", f"{facts.info_path} not found",
                        "set dataset_dir to the folder with dataset_info.json (build_dataset writes it)")]
    found = []
    for d in facts.datasets:
        if not d.in_info:
            found.append(Problem("dataset", f"'{d.name}' is not in {facts.info_path}", "build it or fix the name"))
        elif d.file and not d.exists:
            found.append(Problem("dataset", f"'{d.name}': file {d.file} not found",
                                 "rebuild the dataset or fix file_name in dataset_info.json"))
        elif d.error or d.rows == 0:
            found.append(Problem("dataset", f"'{d.name}': {d.file}: {d.error or 'no rows'}",
                                 "rebuild the dataset (python -m llamafactory_ext.build_dataset)"))
    return found


def template(args: dict[str, Any], facts: Facts) -> list[Problem]:
    name = args.get("template")
    if name and facts.templates and name not in facts.templates:
        close = difflib.get_close_matches(str(name), sorted(facts.templates), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see llamafactory/data/template.py"
        return [Problem("template", f"'{name}' is not a LLaMA-Factory {LF_VERSION} template", hint)]
    preset = _preset_template(str(args.get("model_name_or_path", "")))
    if name and preset and preset != name:
        return [Problem("template", f"'{name}' but the model's preset uses '{preset}'", f"set template={preset}")]
    return []


def _preset_template(model_path: str) -> str | None:
    from ..recipe.models import get_preset  # a registry lookup, no hub access

    try:
        return get_preset(model_path).template
    except Exception:  # not a known preset (a local or unknown model): nothing to compare
        return None


def lf_rules(args: dict[str, Any], facts: Facts) -> list[Problem]:
    """LF / transformers cross-checks that otherwise fail after the model is loaded."""
    found = []
    evaluates = args.get("do_eval") or args.get("eval_strategy", "no") not in ("no", None)
    if evaluates and not (args.get("eval_dataset") or args.get("val_size")):
        found.append(Problem("eval_strategy", "evaluation is on but there is no eval data",
                             "set eval_dataset (or val_size), or eval_strategy=no"))
    if args.get("early_stopping_steps") and not args.get("metric_for_best_model"):
        found.append(Problem("early_stopping_steps", "early stopping needs a metric to watch",
                             "set metric_for_best_model=eval_loss and load_best_model_at_end=true"))
    if args.get("predict_with_generate") and args.get("do_train"):
        found.append(Problem("predict_with_generate", "LF refuses it together with do_train",
                             "predict with the _predict recipe after training"))
    if args.get("predict_with_generate") and facts.deepspeed_stage == 3:
        found.append(Problem("predict_with_generate", "not supported under DeepSpeed ZeRO-3",
                             "predict without deepspeed (the _predict recipe)"))
    return found


def output(args: dict[str, Any], facts: Facts) -> list[Problem]:
    out = args.get("output_dir")
    if not out:
        return [Problem("output_dir", "missing", "set output_dir (saves/<model>/<method>)")]
    if facts.writable:
        return [Problem("output_dir", facts.writable, "choose a writable output_dir")]
    if facts.lock_pid:
        return [Problem("output_dir", f"another supervised run (pid {facts.lock_pid}) is writing to {out}",
                        "wait for it, or choose another output_dir")]
    if args.get("overwrite_output_dir"):
        return []
    prev = {k: v for k, v in facts.previous.items() if v is not None}
    clash = {k: v for k, v in prev.items() if str(v) != str(args.get(k, v))}
    if clash and facts.checkpoints:
        what = ", ".join(f"{k}={v}" for k, v in clash.items())
        return [Problem("output_dir", f"{out} holds another run ({what}); LF would resume it",
                        "choose another output_dir, or overwrite_output_dir=true to start over")]
    if not facts.checkpoints and any(n in LF_CHECKPOINT_NAMES for n in facts.output_entries):
        return [Problem("output_dir", f"{out} holds a finished model and no checkpoint-*; LF refuses to start",
                        "choose another output_dir, or overwrite_output_dir=true")]
    return []


def planned_steps(args: dict[str, Any], facts: Facts) -> int | None:
    if int(args.get("max_steps", -1) or -1) > 0:
        return int(args["max_steps"])
    rows = sum(d.rows or 0 for d in facts.datasets if d.name in _train_names(args))
    limit = args.get("max_samples")
    rows = min(rows, int(limit)) if limit else rows
    if not rows:
        return None
    per_epoch = math.ceil(rows / global_batch(args, world_size(facts)))
    return math.ceil(per_epoch * float(args.get("num_train_epochs", 3.0)))


def _train_names(args: dict[str, Any]) -> set[str]:
    value = args.get("dataset") or ""
    return {n.strip() for n in (value.split(",") if isinstance(value, str) else value)}


def checkpoint_bytes(args: dict[str, Any], facts: Facts) -> int:
    """One checkpoint: weights + Adam's two fp32 moments (8 bytes per trainable parameter)."""
    if args.get("finetuning_type", "lora") == "lora":
        # LoRA trains ~1% of the weights at rank 8; scale by rank (a planning figure, not a promise)
        fraction = 0.01 * int(args.get("lora_rank", 8)) / 8
        return int(facts.model_bytes * fraction * 3) + 2**20
    return facts.model_bytes * 5  # bf16 weights (2 bytes) + fp32 m and v (8 bytes) per parameter


def planned_checkpoints(args: dict[str, Any], steps: int | None) -> int:
    strategy = args.get("save_strategy", "steps")
    if strategy == "no":
        return 1
    if strategy == "epoch":
        count = math.ceil(float(args.get("num_train_epochs", 3.0)))
    else:
        count = math.ceil((steps or 0) / int(args.get("save_steps", 500)))
    limit = args.get("save_total_limit")
    return (min(count, int(limit)) if limit else count) + 1  # + the final save into output_dir


def disk(args: dict[str, Any], facts: Facts) -> list[Problem]:
    steps = planned_steps(args, facts)
    need = checkpoint_bytes(args, facts) * planned_checkpoints(args, steps) * DISK_MARGIN
    if need <= facts.free_bytes:
        return []
    return [Problem("save_steps", f"{planned_checkpoints(args, steps)} checkpoints of "
                    f"~{checkpoint_bytes(args, facts) / 2**20:.0f} MiB need ~{need / 2**30:.1f} GiB; "
                    f"{facts.free_bytes / 2**30:.1f} GiB free", "set save_total_limit (e.g. 3), raise save_steps, "
                    "or free disk space")]


CHECKS = (packages, model, datasets, template, device, lf_rules, output, disk)


def check(args: dict[str, Any], facts: Facts) -> list[Problem]:
    return [p for rule in CHECKS for p in rule(args, facts)]


def notes(args: dict[str, Any], facts: Facts) -> list[str]:
    """What is not wrong but worth knowing before the start (shown in the summary)."""
    found = []
    if facts.checkpoints and not args.get("overwrite_output_dir"):
        found.append(f"resumes from checkpoint-{facts.checkpoints[-1]} in {args.get('output_dir')}")
    if facts.checkpoints and args.get("overwrite_output_dir"):
        found.append(f"overwrite_output_dir: true — starts from step 0; the existing checkpoint-"
                     f"{facts.checkpoints[-1]} is ignored (overwrite_output_dir=false resumes it)")
    if not facts.gpus:
        found.append("no CUDA GPU visible: training runs on the CPU (slow; fine for tiny models)")
    return found
