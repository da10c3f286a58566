"""Plan LLaMA-Factory recipes for your model, data and GPU, and write them into recipes/.

Usage:
    python -m llamafactory_ext.build_recipe                      # the main job: shipped crypto notes, Qwen3-4B-Thinking
    python -m llamafactory_ext.build_recipe --model gemma-3-4b-it --dataset belle --gpu 1x8GB
    python -m llamafactory_ext.build_recipe --model-path ./my-model --template qwen --dataset mine --gpu 2xA100-80GB
    python -m llamafactory_ext.build_recipe --set learning_rate=5e-5 num_train_epochs=2 --check
    python -m llamafactory_ext.build_recipe --seeds              # regenerate the committed seed recipes

Writes recipes/<stem>.yaml (train) and <stem>_predict / _merge / _gptq / _chat.yaml, sharing template,
enable_thinking and paths, then prints the estimate next to the GPU's memory and the exact next commands.
Exit 0 on success, 1 on data errors, 2 on usage or recipe errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError, exit_code

EXAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "examples" / "crypto_notes"
DEFAULT_GPU = "1x24GB"  # why: the common single card of our users (RTX 3090/4090, A10, L4) when none is found here


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.build_recipe", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen3-4b-thinking", help="model preset, hub id or its last part")
    p.add_argument("--model-path", help="local model folder (config.json is read for the memory model)")
    p.add_argument("--template", help="LF template for --model-path (e.g. qwen3, qwen, gemma3)")
    p.add_argument("--reasoning", choices=("thinking_only", "hybrid", "none"), default="none",
                   help="reasoning mode of a --model-path model (default none)")
    p.add_argument("--dataset", default="crypto", help="dataset name built by build_dataset (default crypto)")
    p.add_argument("--dataset-dir", type=Path, default=Path("dataset_info"), help="folder with dataset_info.json")
    p.add_argument("--gpu", help="plan for this GPU instead of the local one: 1x8GB, 2xA100-80GB, 4x4090, T4 …")
    p.add_argument("--vram-gb", type=float, help="GPU memory per card, with --gpus")
    p.add_argument("--gpus", type=int, help="GPUs per node")
    p.add_argument("--nodes", type=int, default=1, help="nodes (multi-node launch via torchrun)")
    p.add_argument("--method", choices=("auto", "lora", "qlora"), default="auto", help="force LoRA or 4-bit QLoRA")
    p.add_argument("--packing", choices=("auto", "on", "neat", "off"), default="auto",
                   help="auto: plain packing on sets of ≥1,000 samples; neat: no cross-sample attention (~12%% slower)")
    p.add_argument("--no-liger", action="store_true", help="do not use Liger kernels")
    p.add_argument("--effective-batch", type=int, help="samples (or packed rows) per optimizer step")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override recipe keys (LF's key=value)")
    p.add_argument("--out", type=Path, default=Path("recipes"), help="output folder (default recipes)")
    p.add_argument("--saves", default="saves", help="where training, predictions and exports go (default saves)")
    p.add_argument("--stem", help="file stem (default from model and method, e.g. qwen3_thinking_lora)")
    p.add_argument("--check", action="store_true", help="also validate every recipe with LF's own parser")
    p.add_argument("--seeds", action="store_true", help="regenerate the committed seed recipes and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return exit_code(lambda: _seeds(args) if args.seeds else run(args), debug=args.debug, write_target=args.out)


def _seeds(args: argparse.Namespace) -> int:
    from .recipe.seeds import SEEDS

    for seed in SEEDS:
        build_seed(seed, args.out, args.dataset_dir)
    return 0


def run(args: argparse.Namespace) -> int:
    """Plan, render and (with --check) validate everything in memory, then write it all in one atomic step."""
    from . import io
    from .recipe.facts import read_facts
    from .recipe.plan import Choices, plan

    preset, model_path = _preset(args)
    _ensure_example(args.dataset, args.dataset_dir, preset)
    facts = read_facts(args.dataset_dir, args.dataset)
    hw = _hardware(args)
    calib = args.dataset_dir / f"{args.dataset}_gptq_calib.jsonl"
    choices = Choices(quant=args.method, packing=args.packing, liger=not args.no_liger,
                      effective_batch=args.effective_batch, dataset_dir=str(args.dataset_dir), calib_file=str(calib),
                      saves=args.saves, recipes_dir=args.out.as_posix())
    result = plan(preset, model_path, facts, hw, choices)
    texts, written = render_plan(result, args.out, args.stem, args.set, hw, preset)
    texts.update(_calibration(args.dataset_dir, args.dataset, calib))
    if args.check:
        _check(result, texts, written)
    io.write_files(texts)
    _print_next(result, written, hw, args.dataset_dir)
    return 0


def _preset(args):
    from .recipe.models import get_preset, preset_from_local

    if args.model_path:
        preset = preset_from_local(Path(args.model_path), args.template, args.reasoning)
        return preset, str(args.model_path)
    if args.template:
        raise UsageError("--template goes with --model-path; a preset already names its template")
    preset = get_preset(args.model)
    return preset, preset.hub_id


def _ensure_example(name: str, dataset_dir: Path, preset) -> None:
    """The main job builds the shipped example dataset when it is missing."""
    if name != "crypto" or (dataset_dir / f"{name}.manifest.json").exists():
        return
    from .build_dataset import main as build

    print(f"building the example dataset '{name}' from {EXAMPLE_CORPUS} …", file=sys.stderr)
    # A thinking-only model must not see samples without reasoning (topic/code explanations have none).
    strict = ["--require-reasoning"] if preset.reasoning == "thinking_only" else []
    corpus = os.path.relpath(EXAMPLE_CORPUS) if EXAMPLE_CORPUS.is_relative_to(Path.cwd()) else str(EXAMPLE_CORPUS)
    code = build(["markdown", corpus, "--name", name, "--out", str(dataset_dir), "--model", preset.key,
                  "--quiet", *strict])
    if code:
        raise UsageError(f"building the example dataset failed (exit {code}); see the messages above")


def _hardware(args):
    from .recipe.hardware import describe, probe

    if args.gpu or args.vram_gb or args.gpus:
        return describe(args.gpu, vram_gb=args.vram_gb, gpus=args.gpus, nodes=args.nodes)
    hw = probe()
    if hw.has_gpu:
        return hw.model_copy(update={"nodes": args.nodes})
    print(f"note: no GPU found on this machine: planning for {DEFAULT_GPU}; pass --gpu to plan for yours",
          file=sys.stderr)
    return describe(DEFAULT_GPU, nodes=args.nodes)


def _calibration(dataset_dir: Path, name: str, target: Path) -> dict[Path, str]:
    """<name>_gptq_calib.jsonl (text passages) from the train split, for the GPTQ recipe ({} without a train file)."""
    from . import io
    from .recipe.calibration import calibration_rows

    train = dataset_dir / f"{name}_train.jsonl"
    if not train.is_file():
        return {}
    rows = (json.loads(line) for line in train.read_text(encoding="utf-8").splitlines() if line.strip())
    return {target: io.jsonl_text(calibration_rows(rows))}


def write_plan(result, out: Path, stem: str | None, overrides: Sequence[str], hw, preset=None) -> dict[str, Path]:
    """Render every recipe (overrides applied where the key exists) and write them all or none."""
    from . import io

    texts, written = render_plan(result, out, stem, overrides, hw, preset)
    io.write_files(texts)
    return written


def render_plan(result, out: Path, stem: str | None, overrides: Sequence[str], hw,
                preset=None) -> tuple[dict[Path, str], dict[str, Path]]:
    """YAML text of every recipe (+ the DeepSpeed JSON the train recipe references), nothing written."""
    from .recipe.render import render

    _refuse_path_overrides(overrides)
    stem = stem or result.stem
    texts, written = {}, {}
    for suffix, recipe in result.recipes.items():
        recipe = _override(recipe, overrides, suffix)
        if suffix == "" and overrides:
            _recheck(result, recipe, preset, hw)
        path = out / f"{stem}{suffix}.yaml"
        texts[path] = render(recipe, header=_header(result, recipe, path, hw))
        written[suffix] = path
    if result.layout.zero:  # the DeepSpeed JSON the train recipe references, shipped with the package
        from importlib.resources import files

        from .recipe.plan import DS_FILES

        name = DS_FILES[result.layout.zero]
        texts[out / "deepspeed" / name] = files("llamafactory_ext.recipe").joinpath("deepspeed", name).read_text()
    return texts, written


PATH_KEYS = ("output_dir", "adapter_name_or_path", "export_dir")  # the recipes point at each other through these


def _refuse_path_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in PATH_KEYS:
            raise UsageError(f"--set {key}=…: the recipe set links its outputs through {', '.join(PATH_KEYS)}; "
                             "move them all with --saves DIR (and name the files with --stem)")


def _recheck(result, train, preset, hw) -> None:
    """Overrides skip the planner: re-apply the thinking-only rule and re-price memory, noting what changed."""
    from dataclasses import replace

    from .recipe.memory import estimate, fits

    if preset is not None and preset.reasoning == "thinking_only" and (
            train.value("template") != preset.template or train.value("enable_thinking") is False):
        raise UsageError(f"{preset.key} thinks in every answer: keep template {preset.template} and enable_thinking "
                         "true, or plan for an instruct model (e.g. --model qwen3-4b-instruct)")
    s = result.layout.setup
    new = replace(s, batch=train.value("per_device_train_batch_size") or s.batch,
                  cutoff_len=train.value("cutoff_len") or s.cutoff_len,
                  quant_bit=train.value("quantization_bit"), grad_ckpt=not train.value("disable_gradient_checkpointing"),
                  liger=bool(train.value("enable_liger_kernel")) and s.liger)
    if new == s or hw.gpu is None or preset is None:
        return
    est = estimate(preset.shape, new)
    verdict = "fits" if fits(est, hw.gpu.vram_gib) else "MAY NOT FIT (expect OOM)"
    result.notes.append(f"after --set: ~{est.need_gib:.1f} GiB needed of {hw.gpu.vram_gib:.0f} GiB ({verdict}; batch "
                        f"{new.batch}, cutoff {new.cutoff_len}, checkpointing {'on' if new.grad_ckpt else 'off'})")


def _override(recipe, overrides: Sequence[str], suffix: str):
    from .recipe.render import apply_overrides
    from .recipe.schema import key_index

    keys = key_index(type(recipe))
    mine = [o for o in overrides if o.split("=", 1)[0].strip() in keys
            and not (suffix == "_gptq" and o.startswith("model_name_or_path"))]  # GPTQ reads the merged model
    if suffix == "":  # the train recipe takes every override, so a typo fails with "did you mean"
        mine = list(overrides)
    return apply_overrides(recipe, mine, source=f"--set ({suffix or 'train'})") if mine else recipe


def _header(result, recipe, path: Path, hw) -> list[str]:
    from .recipe.plan import launch_command

    lines = [f"Generated by python -m llamafactory_ext.build_recipe ({recipe.kind} recipe). Run from the project root:",
             f"  {launch_command(recipe, path, hw)}"]
    if recipe.kind == "train":
        lines += [f"note: {n}" for n in result.notes]
    return lines


def _check(result, texts: dict[Path, str], written: dict[str, Path]) -> None:
    """Validate every rendered recipe with LF's own parser, in one child process, before anything is written."""
    import yaml

    from .recipe.lf_check import check_many
    from .recipe.render import from_flat

    jobs = []
    for suffix, path in written.items():
        kind = result.recipes[suffix].kind
        jobs.append((from_flat(kind, yaml.safe_load(texts[path]), source=str(path)), kind, str(path)))
    skipped = check_many(jobs, workdir=Path.cwd())
    extra = sorted({k for keys in skipped for k in keys})
    print(f"LLaMA-Factory's parser accepts all {len(jobs)} recipes"
          + (f" (not judged on this machine: {', '.join(extra)})" if extra else ""), file=sys.stderr)


def _print_next(result, written: dict[str, Path], hw, dataset_dir: Path) -> None:
    from .recipe.plan import launch_command

    for note in result.notes:
        print(f"note: {note}")
    print("\nwrote " + ", ".join(str(p) for p in written.values()))
    print("\nnext:")
    for suffix, path in written.items():
        print(f"  {launch_command(result.recipes[suffix], path, hw)}")
    print(f"  llamafactory-cli webui   # Data dir: {dataset_dir.resolve()}")


def build_seed(seed, out: Path, dataset_dir: Path) -> dict[str, Path]:
    """Regenerate one committed seed recipe set (hardware as described, never probed)."""
    from .recipe.facts import read_facts
    from .recipe.hardware import describe
    from .recipe.models import get_preset
    from .recipe.plan import Choices, plan
    from .recipe.seeds import BELLE_2K

    preset = get_preset(seed.model)
    if seed.dataset == "crypto":
        _ensure_example("crypto", dataset_dir, preset)
        facts = read_facts(dataset_dir, "crypto")
    else:
        facts = BELLE_2K
    hw = describe(seed.gpu)
    calib = str(dataset_dir / f"{facts.name}_gptq_calib.jsonl")
    result = plan(preset, preset.hub_id, facts, hw, Choices(quant=seed.quant, dataset_dir=str(dataset_dir),
                                                            calib_file=calib, recipes_dir=out.as_posix()))
    return write_plan(result, out, seed.stem, [], hw, preset)


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
