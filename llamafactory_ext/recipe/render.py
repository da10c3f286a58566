"""Recipe ⇄ LLaMA-Factory YAML: LF's own `### section` layout, the flat dict LF receives, and key=value overrides.

RECIPE flow: plan → Recipe (schema.py) → **render / apply_overrides** → io writes recipes/*.yaml → llamafactory-cli.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import yaml

from ..errors import RecipeError
from .schema import WRITES_NULL, Recipe, parse, recipe_class, section_of

# Strings a YAML reader could take for a number: OmegaConf (what `llamafactory-cli` loads YAML with) reads 1e-4 as
# a float where PyYAML keeps a string, so such strings are quoted.
_NUMBER_LIKE = re.compile(r"[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?|[-+]?\.?(inf|nan)", re.IGNORECASE)


def format_float(x: float) -> str:
    """YAML text every reader takes back as this exact float: 0.1, 3.0, LF's 1.0e-4 style for small magnitudes.

    PyYAML's float syntax needs a dot and a signed exponent, so repr()'s 1e-05 or 1e+16 would come back as strings.
    """
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    text = repr(x)  # shortest text that round-trips
    if x != 0 and (abs(x) < 1e-3 or "e" in text):  # learning rates read best as 1.0e-4, like LF's examples
        mantissa, exponent = format(Decimal(text), "e").split("e")
        text = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}"
    return text


def _line(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{key}: {format_float(value)}"
    if isinstance(value, str) and _NUMBER_LIKE.fullmatch(value):
        return f"{key}: '{value}'"
    if isinstance(value, list):  # report_to: [wandb, tensorboard], on one line like LF's examples
        return f"{key}: {_dump(value, flow=True)}"
    return _dump({key: value}, flow=False)


def _dump(data: Any, flow: bool) -> str:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=flow, width=10**9)
    return text.rstrip("\n")


def render(recipe: Recipe, header: Sequence[str] = ()) -> str:
    """LF-style YAML: optional `# header` lines, then `### section` blocks in order; unset keys omitted."""
    blocks = []
    for name, section in recipe.sections():
        lines = [_line(key, value) for key, value in section.written()]
        if lines:
            blocks.append("\n".join([f"### {name}", *lines]))
    top = "".join(f"# {_comment(line)}\n" for line in header) + ("\n" if header else "")
    return top + "\n\n".join(blocks) + "\n"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _comment(line: str) -> str:
    """A header line that stays one comment line: control and line-break characters are shown escaped."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), line)


def flat(recipe: Recipe) -> dict[str, Any]:
    """The dict LF receives (what `llamafactory-cli` gets after loading the YAML)."""
    return {key: value for _, section in recipe.sections() for key, value in section.written()}


def from_flat(kind: str, data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """A flat LF dict (e.g. yaml.safe_load of a recipe file) → recipe of this kind, validated."""
    cls = recipe_class(kind)
    nested: dict[str, dict[str, Any]] = {name: {} for name in cls.model_fields}
    for key, value in data.items():
        nested[section_of(cls, str(key))][str(key)] = value
    return parse(cls, nested, source)


def apply_overrides(recipe: Recipe, items: Iterable[str], source: str = "override") -> Recipe:
    """LF's `key=value` habit on a recipe; values are YAML scalars; null unsets a key (or writes null where LF
    gives it a meaning, e.g. enable_thinking). The result is validated again, cross-rules included."""
    cls = type(recipe)
    nested = {name: section.model_dump(exclude_unset=True) for name, section in recipe.sections()}
    for item in items:
        key, raw = _split(item)
        name = section_of(cls, key)
        value = _coerce(cls.model_fields[name].annotation.model_fields[key].annotation, raw, f"{source}: {key}")
        if value is None and key not in WRITES_NULL:
            nested[name].pop(key, None)
        else:
            nested[name][key] = value
    return parse(cls, nested, source)


def _split(item: str) -> tuple[str, str]:
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
        raise RecipeError(f"override {item!r}: write key=value, e.g. learning_rate=1.0e-4")
    return key.strip(), raw.strip()


def _coerce(annotation: Any, raw: str, where: str = "value") -> Any:
    """The text as a YAML scalar, then fitted to the field: "1e-4" → 1e-4 for floats, 123 → "123" for text keys."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # not YAML (e.g. "a: b"): keep the text, the field type decides
    accepted = _types(annotation)
    if isinstance(value, str) and float in accepted:
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and float in accepted and not math.isfinite(value):
        raise RecipeError(f"{where}={raw}: not a finite number — give a plain value such as 1.0e-4")
    if isinstance(value, int | float) and not isinstance(value, bool) and accepted <= {str, list, type(None)}:
        return raw
    return value


def _types(annotation: Any) -> set[type]:
    """Plain types a (possibly Annotated / Optional / Literal) annotation accepts."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_types(arg) for arg in typing.get_args(annotation)))
    if origin is typing.Literal:
        return {type(arg) for arg in typing.get_args(annotation)}
    if origin is not None:
        return {origin}
    return {annotation}
