"""Plan LLaMA-Factory recipes for your model, data and GPU, and write them into recipes/.

Usage:
    python -m llamafactory_ext.build_recipe                      # the main job: shipped crypto notes, Qwen3-4B-Thinking
    python -m llamafactory_ext.build_recipe --model gemma-3-4b-it --dataset belle --gpu 1x8GB
    python -m llamafactory_ext.build_recipe --model-path ./my-model --template qwen --dataset mine --gpu 2xA100-80GB
    python -m llamafactory_ext.build_recipe --set learning_rate=5e-5 num_train_epochs=2 --check
    python -m llamafactory_ext.build_recipe --seeds              # regenerate the committed seed recipes

Writes recipes/<stem>.yaml (train) and <stem>_predict / _merge / _gptq / _chat.yaml, sharing template,
enable_thinking and paths, then prints the estimate next to the GPU's memory and the exact next commands.
Exit 0 on success, 1 on data errors, 2 on usage or recipe errors (a plan that does not fit the GPU, unless --force).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError, exit_code

EXAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "examples" / "crypto_notes"
DEFAULT_GPU = "1x24GB"  # why: the common single card of our users (RTX 3090/4090, A10, L4) when none is found here


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from .recipe.strategies import PARALLEL_CHOICES

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
    p.add_argument("--overwrite", action="store_true",
                   help="replace a recipe file of another dataset, and start afresh in an output folder that holds "
                        "another run's checkpoints (writes overwrite_output_dir: true)")
    p.add_argument("--force", action="store_true", help="write a plan that does not fit the GPU (flagged in it)")
    p.add_argument("--parallel", default="auto", choices=PARALLEL_CHOICES,
                   help="parallel strategy (LF's: DDP, DeepSpeed ZeRO-2/3 ± offload, FSDP, FSDP+QLoRA, AutoTP, "
                        "Megatron); auto = the fastest that fits; the plan prints the alternatives")
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
    """Check every input, plan, render and (with --check) validate in memory, then write it all in one step."""
    from . import io
    from .recipe.parallel import notes, select, with_strategy_files
    from .recipe.plan import Choices, plan

    _check_args(args)
    preset, model_path = _preset(args)
    _ensure_example(args.dataset, args.dataset_dir, preset)
    facts = _facts(args.dataset_dir, args.dataset, model_path or preset.key, preset.template)
    files = _dataset_files(args.dataset_dir, facts)
    hw = _hardware(args)
    calib = args.dataset_dir / f"{args.dataset}_gptq_calib.jsonl"
    passages = _passages(files["train"])
    choices = Choices(quant=args.method, packing=args.packing, liger=not args.no_liger,
                      effective_batch=args.effective_batch, dataset_dir=str(args.dataset_dir), calib_file=str(calib),
                      saves=args.saves, recipes_dir=args.out.as_posix(), calib_windows=_windows(passages),
                      stem=args.stem, cpus=_cpus(hw), overwrite=args.overwrite, force=args.force)
    result = plan(preset, model_path, facts, hw, choices)
    parallel = select(result, preset, hw, args.parallel, args.out.as_posix(), args.force)
    texts, written = render_plan(result, args.out, None, [*parallel.overrides, *args.set], hw, preset,
                                 force=args.force)
    for line in notes(parallel):
        print(line)
    texts = with_strategy_files(parallel, texts, written, hw, args.out)
    if result.gptq is not None:
        texts[calib] = io.jsonl_text(passages)
    _refuse_conflicts(result, texts, written, args)
    if args.check:
        _check(result, texts, written)
    io.write_files(texts)
    _print_next(result, written, hw, args.dataset_dir)
    return 0


def _check_args(args: argparse.Namespace) -> None:
    """Names, paths and numbers from the command line, before anything is read or written."""
    from .recipe import inputs

    inputs.check_name("--dataset", args.dataset)
    if args.stem is not None:
        inputs.check_name("--stem", args.stem)
    for option, value in (("--out", args.out), ("--dataset-dir", args.dataset_dir), ("--model-path", args.model_path),
                          ("--model", args.model), ("--gpu", args.gpu)):
        inputs.check_path(option, value)
    inputs.check_saves(args.saves)
    inputs.check_effective_batch(args.effective_batch)
    inputs.check_vram(args.vram_gb)
    for item in args.set:
        inputs.check_path("--set", item)


def _facts(dataset_dir: Path, name: str, model: str | Path, template: str):
    """read_facts with the model's token counter (its real lengths under its template), a malformed manifest
    (wrong types, bad encoding) reported as a located data error."""
    from .errors import DataError
    from .recipe.facts import read_facts
    from .tokens import counter_for

    try:
        return read_facts(dataset_dir, name, counter_for(model), template)
    except (TypeError, AttributeError, ValueError, RecursionError) as exc:
        if isinstance(exc, DataError) or type(exc).__module__.startswith("llamafactory_ext"):
            raise
        raise DataError(str(dataset_dir / f"{name}.manifest.json"), None,
                        f"not a build_dataset manifest ({type(exc).__name__}: {str(exc)[:120]})",
                        "rebuild the dataset with build_dataset") from None


def _dataset_files(dataset_dir: Path, facts) -> dict[str, Path]:
    from .recipe.inputs import dataset_files

    splits = ("train",) + tuple(s for s in ("val", "test") if getattr(facts, s))
    return dataset_files(dataset_dir, facts.name, splits)


def _passages(train: Path) -> list[dict]:
    """GPTQ calibration passages from the train split (every row validated on the way)."""
    from .recipe.calibration import calibration_rows
    from .recipe.inputs import row_texts

    return list(calibration_rows(row_texts(train)))


def _windows(passages: list[dict]) -> int:
    from .recipe.calibration import windows

    return windows(passages)


DESCRIBED_CPUS = 8  # why: a GPU server described by name has at least this many cores; it caps the workers anyway


def _cpus(hw) -> int:
    return (os.cpu_count() or 1) if hw.source == "probe" else DESCRIBED_CPUS


def _refuse_conflicts(result, texts: dict[Path, str], written: dict[str, Path], args: argparse.Namespace) -> None:
    """Never overwrite another run: its checkpoints in output_dir, or another dataset's recipe file."""
    import yaml

    from .errors import UsageError
    from .recipe.inputs import last_checkpoint, recipe_conflict, run_conflict

    train = yaml.safe_load(texts[written[""]])  # the recipe as written, --set overrides included
    out_dir = Path(train["output_dir"])
    why = run_conflict(out_dir, train["model_name_or_path"], train.get("lora_rank", 8))
    if why and not args.overwrite:
        raise UsageError(f"output_dir {out_dir} {why}. Name this run apart with --stem NAME (or --saves DIR), or "
                         "pass --overwrite to start afresh there")
    if not why and (last := last_checkpoint(out_dir)) is not None:
        result.notes.append(f"{out_dir} holds {last.name} of this run: training resumes from it")
    why = recipe_conflict(written[""], args.dataset)
    if why and not args.overwrite:
        raise UsageError(f"{written['']} {why}. Name this recipe set with --stem NAME, or pass --overwrite")


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

    if args.gpu or args.vram_gb is not None or args.gpus is not None:
        return describe(args.gpu, vram_gb=args.vram_gb, gpus=args.gpus, nodes=args.nodes)
    hw = probe()
    if hw.has_gpu:
        return hw.model_copy(update={"nodes": args.nodes})
    print(f"note: no GPU found on this machine: planning for {DEFAULT_GPU}; pass --gpu to plan for yours "
          "(--gpu cpu plans a short CPU dry run)", file=sys.stderr)
    return describe(DEFAULT_GPU, nodes=args.nodes)


def write_plan(result, out: Path, stem: str | None, overrides: Sequence[str], hw, preset=None) -> dict[str, Path]:
    """Render every recipe (overrides applied where the key exists) and write them all or none."""
    from . import io

    texts, written = render_plan(result, out, stem, overrides, hw, preset)
    io.write_files(texts)
    return written


def render_plan(result, out: Path, stem: str | None, overrides: Sequence[str], hw,
                preset=None, force: bool = False) -> tuple[dict[Path, str], dict[str, Path]]:
    """YAML text of every recipe (+ the DeepSpeed JSON the train recipe references), nothing written. Every text
    reads back (yaml.safe_load) to exactly the planned keys."""
    from .recipe.render import render
    from .recipe.reprice import recheck

    _refuse_path_overrides(overrides)
    stem = stem or result.stem
    texts, written = {}, {}
    for suffix, recipe in result.recipes.items():
        recipe = _override(recipe, overrides, suffix)
        if suffix == "" and overrides:
            recheck(result, recipe, preset, hw, force)
        path = out / f"{stem}{suffix}.yaml"
        texts[path] = render(recipe, header=_header(result, recipe, path, hw))
        _reads_back(texts[path], recipe, path)
        written[suffix] = path
    if result.layout.zero:  # the DeepSpeed JSON the train recipe references, shipped with the package
        from importlib.resources import files

        from .recipe.plan import DS_FILES

        name = DS_FILES[result.layout.zero]
        texts[out / "deepspeed" / name] = files("llamafactory_ext.recipe").joinpath("deepspeed", name).read_text()
    return texts, written


def _reads_back(text: str, recipe, path: Path) -> None:
    import yaml

    from .errors import RecipeError
    from .recipe.render import flat

    if yaml.safe_load(text) != flat(recipe):
        raise RecipeError(f"{path}: the rendered YAML does not read back to the planned keys (a bug: please report "
                          "it with the command line); nothing was written")


PATH_KEYS = ("output_dir", "adapter_name_or_path", "export_dir")  # the recipes point at each other through these


def _refuse_path_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in PATH_KEYS:
            raise UsageError(f"--set {key}=…: the recipe set links its outputs through {', '.join(PATH_KEYS)}; "
                             "move them all with --saves DIR (and name the files with --stem)")


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
    if hw.gpu is None:
        print("\nnext (a CPU dry run, on this machine):")
    elif hw.source == "described":
        print(f"\nnext, on the machine with the {hw.gpus}x {hw.gpu.name} this plan is for (not this one unless it "
              "has those GPUs), from the project root:")
    else:
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
    from .tokens import counter_for

    preset = get_preset(seed.model)
    if seed.dataset == "crypto":
        _ensure_example("crypto", dataset_dir, preset)
        facts = read_facts(dataset_dir, "crypto", counter_for(preset.key), preset.template)
    else:
        facts = BELLE_2K
    hw = describe(seed.gpu)
    calib = str(dataset_dir / f"{facts.name}_gptq_calib.jsonl")
    windows = _windows(_passages(dataset_dir / "crypto_train.jsonl")) if seed.dataset == "crypto" else None
    result = plan(preset, preset.hub_id, facts, hw, Choices(quant=seed.quant, dataset_dir=str(dataset_dir),
                                                            calib_file=calib, recipes_dir=out.as_posix(),
                                                            calib_windows=windows, stem=seed.stem,
                                                            cpus=DESCRIBED_CPUS))
    return write_plan(result, out, seed.stem, [], hw, preset)


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
