"""Normalize step 2: traditional → simplified Chinese with OpenCC, on a prose segment.

Modes: t2s (generic), tw2sp (Taiwan, with phrases: 軟體 → 软件), hk2s (Hong Kong), off (identity).
tw2sp also rewrites simplified words with a Taiwan meaning (文件 → 文档): use it only for Taiwan text.
"""

from __future__ import annotations

import functools

from ...errors import UsageError, lookup

# Mode → OpenCC config name (opencc >= 1.1 accepts both "t2s" and "t2s.json").
CONFIGS = {"t2s": "t2s", "tw2sp": "tw2sp", "hk2s": "hk2s", "off": None}
MODES = tuple(CONFIGS)
# OpenCC is not idempotent on a few inputs (tw2sp: 麼 → 么 → 幺), so convert until the text is stable;
# chains seen in OpenCC 1.1 dictionaries are at most 2 long, the cap only guards against a cycle.
_MAX_ROUNDS = 4


def check_mode(mode: str) -> str | None:
    """The OpenCC config for ``mode`` (None for "off"); UsageError naming the allowed modes otherwise."""
    return lookup(CONFIGS, "t2s mode", mode)


@functools.cache  # one OpenCC object per config (an unbounded lru_cache)
def _converter(config: str):
    try:
        import opencc
    except ImportError:
        raise UsageError(
            "Chinese conversion needs the 'opencc' package: pip install opencc (or pass t2s='off')"
        ) from None
    return opencc.OpenCC(config)


def chinese(text: str, mode: str = "t2s") -> str:
    """``text`` converted to simplified Chinese with the OpenCC config of ``mode``."""
    config = check_mode(mode)
    if config is None or text.isascii():  # O(1): ASCII-only segments skip OpenCC
        return text
    convert = _converter(config).convert
    for _ in range(_MAX_ROUNDS):
        new = convert(text)
        if new == text:
            break
        text = new
    return text
