"""Reasoning quality checks on Samples (after convert, before filter/split): pure, report-only.

check_reasoning() flags thin reasoning turn by turn; gate_thinking_only() refuses a dataset that would
teach a thinking-only model (Qwen3-4B-Thinking-2507, LF template qwen3) to skip thinking.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import UsageError
from ..records import Sample
from .normalize.segments import code_blocks

CODES = ("no_analysis", "no_steps", "no_conclusion", "code_not_discussed", "too_short", "too_long")


def _markers(chinese: str, english: str) -> re.Pattern[str]:
    # English words are fenced by ASCII letters only: Chinese glues words to them ("需要check"), and \b
    # would see no boundary between a CJK character and a Latin letter.
    return re.compile(rf"{chinese}|(?<![a-z])(?:{english})", re.I)


_ANALYSIS = _markers("分析|问题|需要|考虑|目标|首先|题目|要求", r"analy|consider|need|goal|first(?![a-z])")
_STEP_WORDS = _markers(
    "首先|然后|接着|其次|第[一二三四五六七八九十\\d]+|最后|步骤", r"(?:first|then|next|finally|step)(?![a-z])"
)
_NUMBERED = re.compile(r"^[ \t]*\d+[.、)）]", re.M)
_CONCLUSION = _markers(
    "因此|所以|结论|综上|可见|总之|由此|故", r"(?:therefore|thus|hence|so|in conclusion)(?![a-z])"
)
_CODE_TALK = _markers("代码|函数|实现|变量|调用", r"code|function|implement|variable|call")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")  # 3+ chars: "i", "x" say nothing about the code
# Words every snippet has: naming them proves nothing about this code.
# fmt: off
_KEYWORDS = frozenset((  # compared lower-cased
    "def", "class", "return", "import", "from", "for", "while", "elif", "else", "try", "except", "finally",
    "with", "pass", "print", "self", "none", "true", "false", "and", "not", "lambda", "yield", "async",
    "await", "const", "let", "var", "new", "this", "null", "void", "int", "str", "float", "bool", "char",
    "public", "private", "static", "func", "package", "fmt", "main", "use", "mut", "impl", "pub", "struct",
    "include", "std", "cout",
))
# fmt: on
MIN_STEPS = 2  # one "首先" is a start, not an ordered sequence
# Short answers ("42", "可以。") follow long reasoning legitimately: measure against at least this many chars.
MIN_ANSWER_CHARS = 100
# Below 1/20 of the answer the reasoning is a token gesture (a sentence before a page of code); above 20x,
# it rambles and risks truncation at cutoff_len. Both bounds are loose: they flag outliers, not style.
MIN_RATIO, MAX_RATIO = 0.05, 20.0


@dataclass(frozen=True)
class QualityIssue:
    sample_origin: str
    code: str
    message: str


def _fence_body(block: str) -> str:
    lines = block.split("\n")[1:]
    if lines and lines[-1].strip()[:3] in ("```", "~~~"):  # an unclosed fence has no closing line
        lines.pop()
    return "\n".join(lines)


def _code_identifiers(answer: str) -> list[str]:
    """Identifiers of the fenced code in ``answer`` (fence lines excluded: "```python" is no identifier)."""
    names = (n for block in code_blocks(answer) for n in _IDENT.findall(_fence_body(block)))
    return list(dict.fromkeys(n for n in names if n.lower() not in _KEYWORDS))


def _code_issue(reasoning: str, answer: str, where: str) -> str | None:
    if not code_blocks(answer) or _CODE_TALK.search(reasoning):
        return None
    names = _code_identifiers(answer)
    if set(names) & set(_IDENT.findall(reasoning)):
        return None
    example = f" such as `{names[0]}`" if names else ""
    return (
        f"the answer of {where} contains code but its reasoning never discusses it (no 代码/函数/实现/变量/调用, "
        f"code/function, or identifier from the code{example}); explain what the code does and why"
    )


def _ratio_issue(reasoning: str, answer: str, where: str, lo: float, hi: float) -> tuple[str, str] | None:
    n, m = len(reasoning.strip()), len(answer.strip())
    ratio = n / max(m, MIN_ANSWER_CHARS)
    sizes = f"reasoning of {where} has {n} characters for a {m}-character answer (ratio {ratio:.2f}"
    if ratio < lo:
        return "too_short", f"{sizes} < {lo}); work the problem out in the reasoning before answering"
    if ratio > hi:
        return "too_long", f"{sizes} > {hi}); cut repetition from the reasoning, long traces get truncated"
    return None


def _has_steps(reasoning: str) -> bool:
    return len(_STEP_WORDS.findall(reasoning)) + len(_NUMBERED.findall(reasoning)) >= MIN_STEPS


# (code, test the reasoning must pass, what is missing and how to fix it)
_RULES = (
    (
        "no_analysis",
        _ANALYSIS.search,
        "does not analyse the problem (no 分析/问题/需要/考虑/目标/首先 or "
        "analyse/consider/need/goal); start by restating what is asked and what the answer must satisfy",
    ),
    (
        "no_steps",
        _has_steps,
        f"shows no ordered steps (fewer than {MIN_STEPS} of 首先/然后/接着/最后/第一/"
        "第二/步骤, numbered lines, or first/then/next/finally); lay the work out step by step",
    ),
    (
        "no_conclusion",
        _CONCLUSION.search,
        "states no conclusion (no 因此/所以/结论/综上/可见 or "
        "therefore/thus/so); end it with the result the answer gives",
    ),
)


def _turn_issues(reasoning: str, answer: str, where: str, lo: float, hi: float) -> list[tuple[str, str]]:
    found = [(code, f"reasoning of {where} {fix}") for code, test, fix in _RULES if not test(reasoning)]
    if code := _code_issue(reasoning, answer, where):
        found.append(("code_not_discussed", code))
    if ratio := _ratio_issue(reasoning, answer, where, lo, hi):
        found.append(ratio)
    return found


def check_reasoning(
    sample: Sample, *, min_ratio: float = MIN_RATIO, max_ratio: float = MAX_RATIO
) -> list[QualityIssue]:
    """Issues of every assistant turn that has reasoning (turns without reasoning are the gate's business)."""
    answers = [t for t in sample.turns if t.role == "assistant"]
    issues = []
    for k, turn in enumerate(answers, 1):
        if not turn.reasoning:
            continue
        where = "the assistant turn" if len(answers) == 1 else f"assistant turn {k}"
        for code, message in _turn_issues(turn.reasoning, turn.content, where, min_ratio, max_ratio):
            issues.append(QualityIssue(sample.origin, code, message))
    return issues


def reasoning_share(samples: Iterable[Sample]) -> float:
    """Share of samples with reasoning in at least one assistant turn (0.0 for no samples)."""
    flags = [s.has_reasoning for s in samples]
    return sum(flags) / len(flags) if flags else 0.0


@dataclass
class ThinkingGate:
    ok: bool
    share_without: float
    message: str


# LF's qwen3 template trains an empty think block for every sample without reasoning. A few such samples
# (greetings, refusals) leave a thinking-only model thinking; past ~1 in 20 the empty block becomes a
# pattern the model learns to produce, so 5% is the most we let through by default.
MAX_WITHOUT = 0.05


def gate_thinking_only(samples: Iterable[Sample | bool], *, max_without: float = MAX_WITHOUT) -> ThinkingGate:
    """Refuse (ok False) a dataset for a thinking-only model when too many samples have no reasoning
    (``samples``: the samples, or whether each has reasoning)."""
    if not 0.0 <= max_without <= 1.0:
        raise UsageError(f"max_without must be a share between 0 and 1, got {max_without}")
    flags = [s if isinstance(s, bool) else s.has_reasoning for s in samples]
    without = flags.count(False)
    share = without / len(flags) if flags else 0.0
    counts = f"{without} of {len(flags)} samples ({share:.1%}) have no reasoning"
    if share <= max_without:
        return ThinkingGate(
            True, share, f"{counts}: within the {max_without:.1%} limit for a thinking-only model"
        )
    return ThinkingGate(
        False,
        share,
        (
            f"{counts}; the limit for a thinking-only model is {max_without:.1%}. LLaMA-Factory's qwen3 template "
            "trains an empty <think>\\n\\n</think> block for each of them, which teaches the model (e.g. "
            "Qwen3-4B-Thinking-2507) to skip thinking. Fix: add reasoning to those samples, drop them with "
            "--require-reasoning, or set enable_thinking: null (or train a non-thinking model)"
        ),
    )


def summarize(issues: Iterable[QualityIssue]) -> dict[str, int]:
    """Issue counts by code, in the order of CODES (codes without issues are left out)."""
    counts = Counter(i.code for i in issues)
    return {code: counts[code] for code in CODES if counts[code]}
