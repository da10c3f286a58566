"""What the planner needs to know about a dataset (the RECIPE flow's data edge): counts from build_dataset's manifest,
token lengths counted on the written rows with the target model's counter (llamafactory_ext/tokens.py).

``read_facts(dir, name)`` keeps the manifest's estimates; ``read_facts(dir, name, counter=counter_for(model),
template=preset.template)`` counts the rows of ``<name>_train`` as the template renders them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError, UsageError
from ..tokens import TokenCounter

# LF 0.9.5 templates that add a system prompt to rows without one (data/template.py); others among our presets add none.
DEFAULT_SYSTEM = {"qwen": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}
EMPTY_THINK = "<think>\n\n</think>\n\n"  # why: LF's qwen3 template adds it to an answer without reasoning


@dataclass(frozen=True)
class DataFacts:
    """Counts and lengths of one built dataset (``name`` → entries name_train / name_val / name_test)."""

    name: str
    train: int
    val: int = 0
    test: int = 0
    tokens_p50: int = 256
    tokens_p99: int = 1024
    tokens_max: int = 2048
    answer_tokens_p99: int = 1024  # assistant output (reasoning + answer) p99: sizes predict/chat max_new_tokens
    token_counter: str = "estimate"  # which counter produced the lengths: "tokenizer:<path>", "qwen-bpe", "estimate"
    with_reasoning: float = 0.0  # share of train samples with reasoning, 0..1
    multi_turn: bool = False

    @property
    def eval_split(self) -> str | None:
        return "test" if self.test else ("val" if self.val else None)


def read_facts(dataset_dir: Path, name: str, counter: TokenCounter | None = None,
               template: str | None = None) -> DataFacts:
    """Facts from ``<dataset_dir>/<name>.manifest.json``; with a counter, token lengths of the written train rows
    (the manifest's estimate stays when the rows are missing). A clear error when the dataset was not built."""
    facts = _manifest_facts(Path(dataset_dir), name)
    if counter is None:
        return facts
    rows = read_rows(Path(dataset_dir), f"{name}_train")
    return facts if rows is None else with_counted_tokens(facts, rows, counter, template)


def _manifest_facts(dataset_dir: Path, name: str) -> DataFacts:
    path = dataset_dir / f"{name}.manifest.json"
    if not path.is_file():
        raise UsageError(f"{path}: no such manifest — build the dataset first: "
                         f"python -m llamafactory_ext.build_dataset markdown YOUR_NOTES --name {name} --out {dataset_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        splits = manifest["splits"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise DataError(str(path), None, f"not a build_dataset manifest ({exc})", "rebuild the dataset") from None
    return facts_from_splits(name, splits, manifest.get("reasoning_mode", "think"))


def facts_from_splits(name: str, splits: dict, reasoning_mode: str = "think") -> DataFacts:
    """Pure core of read_facts: the manifest's ``splits`` statistics → DataFacts.

    Reasoning counts only when it was written as <think> blocks (a plain-mode build dropped it or made it text)."""
    train = splits.get("train", {})
    n = train.get("samples", 0)
    if not n:
        raise UsageError(f"dataset '{name}' has no training samples — rebuild it with a train share above 0")
    tokens = train.get("tokens_est", {})
    return DataFacts(
        name=name, train=n, val=splits.get("val", {}).get("samples", 0), test=splits.get("test", {}).get("samples", 0),
        tokens_p50=tokens.get("p50", 256), tokens_p99=tokens.get("p99", 1024), tokens_max=tokens.get("max", 2048),
        with_reasoning=train.get("with_reasoning", 0) / n if reasoning_mode == "think" else 0.0, multi_turn=train.get("kinds", {}).get("chat", 0) > 0,
    )


Message = tuple[str, str]  # (role: system / user / assistant, content)


def with_counted_tokens(facts: DataFacts, rows: list[list[Message]], counter: TokenCounter,
                        template: str | None = None) -> DataFacts:
    """Replace the estimated lengths by counted ones: row totals as the template renders them, answers + EOS."""
    totals, answers = [], []
    for messages in rows:
        total, outputs = row_tokens(messages, counter, template)
        totals.append(total)
        answers.extend(outputs)
    if not totals:
        return facts
    from ..data.report import percentiles  # nearest-rank, as the manifest's own percentiles

    tok, ans = percentiles(totals), percentiles(answers or [0])
    return replace(facts, tokens_p50=tok["p50"], tokens_p99=tok["p99"], tokens_max=tok["max"],
                   answer_tokens_p99=ans["p99"], token_counter=counter.name)


def row_tokens(messages: list[Message], counter: TokenCounter, template: str | None = None) -> tuple[int, list[int]]:
    """(tokens of the whole rendered row, tokens of each assistant output incl. its end-of-turn token)."""
    if template in DEFAULT_SYSTEM and not any(role == "system" for role, _ in messages):
        messages = [("system", DEFAULT_SYSTEM[template]), *messages]
    think = template == "qwen3"
    texts = [EMPTY_THINK + c if think and r == "assistant" and "<think>" not in c else c for r, c in messages]
    counts = counter.count(texts)
    outputs = [n + 1 for (role, _), n in zip(messages, counts, strict=True) if role == "assistant"]
    return sum(counts) + counter.turn_overhead * len(messages), outputs


def read_rows(dataset_dir: Path, entry: str) -> list[list[Message]] | None:
    """Messages of every row of a dataset_info entry (sharegpt or alpaca); None when the files are missing."""
    info_path = dataset_dir / "dataset_info.json"
    try:
        spec = json.loads(info_path.read_text(encoding="utf-8"))[entry]
        path = dataset_dir / spec["file_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not path.is_file():
        return None
    fmt = spec.get("formatting", "alpaca")
    to_messages = _alpaca_messages if fmt == "alpaca" else _sharegpt_messages
    out = []
    for where, row in _json_rows(path):
        try:
            out.append(to_messages(row, spec))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(str(path), where, f"not a {fmt} row as dataset_info.json entry '{entry}' describes "
                            f"({type(exc).__name__}: {exc})", "rebuild the dataset with build_dataset") from None
    return out


def _json_rows(path: Path) -> list[tuple[int | None, dict]]:
    """(line number, row) of a JSONL file, or (None, row) of a JSON array."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(str(path), line, f"not UTF-8 ({exc.reason})", "rebuild the dataset with build_dataset") from None
    if path.suffix == ".json":
        try:
            return [(None, row) for row in json.loads(text)]
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(str(path), None, f"not a JSON array of rows ({exc})", "rebuild the dataset") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), lineno, f"not JSON ({exc.msg})", "rebuild the dataset") from None
            except RecursionError:
                raise DataError(str(path), lineno, "JSON nested too deeply", "rebuild the dataset") from None
            if not isinstance(row, dict):
                raise DataError(str(path), lineno, f"row is not an object but a {type(row).__name__}",
                                "rebuild the dataset with build_dataset") from None
            rows.append((lineno, row))
    return rows


def _sharegpt_messages(row: dict, spec: dict) -> list[Message]:
    cols, tags = spec.get("columns", {}), spec.get("tags", {})
    role_tag, content_tag = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    roles = {tags.get("user_tag", "human"): "user", tags.get("assistant_tag", "gpt"): "assistant",
             tags.get("system_tag", "system"): "system"}
    out = [("system", str(row[cols["system"]]))] if cols.get("system") and row.get(cols["system"]) else []
    for msg in row.get(cols.get("messages", "conversations"), []):
        out.append((roles.get(msg.get(role_tag), "user"), str(msg.get(content_tag, ""))))
    return out


def _alpaca_messages(row: dict, spec: dict) -> list[Message]:
    cols = {"prompt": "instruction", "query": "input", "response": "output", **spec.get("columns", {})}
    out = [("system", str(row[cols["system"]]))] if cols.get("system") and row.get(cols["system"]) else []
    for user, assistant in row.get(cols.get("history", "")) or []:
        out += [("user", str(user)), ("assistant", str(assistant))]
    prompt = "\n".join(p for p in (row.get(cols["prompt"], ""), row.get(cols["query"], "")) if p)
    return [*out, ("user", prompt), ("assistant", str(row.get(cols["response"], "")))]
