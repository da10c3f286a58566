"""build_recipe --parallel: price every LF strategy for the planned setup, print the alternatives, switch the train
recipe to the chosen one (its DeepSpeed JSON / accelerate config) and add the launch files (RECIPE flow, after plan).

``auto`` keeps the planner's layout (its calibrated search already chose the fastest that fits among DDP and
ZeRO-3 ± offload); any other name is the user's switch, refused with the reason and the nearest allowed strategy,
or when it does not fit (``--force``); the switched train recipe is re-priced by the planner's own model too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from . import strategies

PLANNER = {None: "ddp", "z3": "zero3", "z3_offload": "zero3-offload"}  # the planner's layout.zero → strategy


@dataclass
class Choice:
    chosen: strategies.Option
    options: list[strategies.Option]
    overrides: list[str] = field(default_factory=list)  # key=value for the train recipe (render's --set path)
    files: dict[str, str] = field(default_factory=dict)  # config files relative to recipes/ → text
    switched: bool = False


def select(result, preset, hw, name: str, recipes_dir: str, force: bool = False) -> Choice:
    """The strategy for this plan and what the train recipe needs for it."""
    setup = result.layout.setup
    method = "qlora" if setup.quant_bit else "lora"
    accum = int(getattr(result.recipes[""], "value", lambda _k: 1)("gradient_accumulation_steps") or 1)
    options = strategies.price(preset.shape, method, hw, setup.batch, setup.cutoff_len, packing=setup.packing,
                               liger=setup.liger, grad_ckpt=setup.grad_ckpt, rank=setup.lora_rank, grad_accum=accum)
    planned = PLANNER.get(result.layout.zero, "ddp")
    chosen = _chosen(options, name, planned)
    if name != "auto" and not chosen.fits and not force:
        raise UsageError(f"--parallel {name}: needs ~{chosen.need_gib:.1f} GiB per GPU, more than the card has — "
                         "pick one that fits from the table (or --force to write it anyway)")
    if chosen.name == planned:
        return Choice(chosen, options)
    keys = strategies.recipe_keys(chosen.name, hw, preset.shape, recipes_dir)
    overrides = [f"{k}={_yaml(v)}" for k, v in keys.items()] + ([] if "deepspeed" in keys else ["deepspeed=null"])
    return Choice(chosen, options, overrides, strategies.config_texts(chosen.name, hw, preset.shape), True)


def _chosen(options: list[strategies.Option], name: str, planned: str) -> strategies.Option:
    if name != "auto":
        return strategies.choose(options, name)
    # auto = the planner's own layout: its search priced DDP / ZeRO-3 / offload with the calibrated model and kept
    # the fastest that fits; the table shows the other strategies as estimated alternatives
    return next(o for o in options if o.name == planned)


def _yaml(value: object) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def notes(choice: Choice) -> list[str]:
    """The table of alternatives and, when the user switched, what changed."""
    lines = strategies.table_text(choice.options, top=5, chosen=choice.chosen.name).splitlines()
    if choice.switched:
        lines.append(f"switched the train recipe to --parallel {choice.chosen.name}: " + ", ".join(choice.overrides))
    return lines


def with_strategy_files(choice: Choice, texts: dict, written: dict, hw, out) -> dict:
    """``texts`` plus the chosen strategy's config files (instead of the planner's DeepSpeed JSON when switched)
    and, for several GPUs or nodes, the launch files next to the train recipe."""
    from . import launch

    files = {k: v for k, v in texts.items()
             if not (choice.switched and k.suffix == ".json" and k.parent.name == "deepspeed")}  # no longer referenced
    files |= {out / rel: text for rel, text in choice.files.items()}
    if hw.world_size > 1:
        train = written[""]
        made = launch.artefacts(train.as_posix(), choice.chosen.name, hw, hw.nodes, texts[train])
        files |= {out / name: text for name, text in made.items()}
    return files
