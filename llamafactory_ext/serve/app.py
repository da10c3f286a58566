"""The Gradio page: one prompt, base + adapters answering side by side (reasoning folded above each answer),
shared generation settings, a test-split sample picker, blind A/B voting with a live ranking, and a status panel.

Everything a user or a model wrote reaches the page through gradio's sanitised Chatbot / escaped markdown.
"""

from __future__ import annotations

import html
import random
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..endpoint.reasoning import parse_text
from .engine import Engine, Settings
from .selftest import Probe, verdict

MAX_COLUMNS = 4  # base + up to 3 adapters, the target
MAX_PROMPT_CHARS = 4000  # why: bounds the prompt's tokens on a small GPU; long documents belong in evaluate
STATUS_SECONDS = 2.0
PROBE = "请用一句话解释什么是对称加密。"
LOADING = "模型加载与自检中，请稍候 / models are loading and self-testing — try again in a moment"


@dataclass
class AppState:
    engine: Engine
    votes_dir: Path
    samples: list[dict] = field(default_factory=list)
    # load error, self-test failure, or still loading: comparison refused, page still served
    problem: str | None = None
    loading: bool = True  # until start() has loaded the models and run the self-test
    probes: list[Probe] = field(default_factory=list)


def start(state: AppState) -> None:
    """Load lazily-declared models and run the self-test; failures become ``state.problem``, never exceptions."""
    try:
        _start(state)
    finally:
        state.loading = False


def _start(state: AppState) -> None:
    try:
        state.engine.load()
    except Exception as exc:  # noqa: BLE001 — the page must keep serving and say why (bad config, OOM, PEFT refusal)
        state.problem, state.engine.state = f"加载失败 / load failed: {_first_line(exc)}", "load failed"
        return
    try:
        cols = state.engine.columns
        answers, _ = state.engine.generate(PROBE, Settings(max_new_tokens=8, greedy=True), cols)
        logits = state.engine.probe_logits(PROBE, cols)
    except Exception as exc:  # noqa: BLE001 — no self-test, no comparison
        state.problem = f"自检失败 / self-test could not run: {_first_line(exc)}"
        return
    state.probes = [Probe(a.column, a.text, lg) for a, lg in zip(answers, logits, strict=True)]
    state.problem = verdict(state.probes)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def messages(text: str) -> list[dict]:
    """Chatbot messages for one answer: the thought folded (both <think>… and pre-filled …</think>), then the answer."""
    parsed = parse_text(text)
    out = []
    if parsed.reasoning:
        title = "思考过程" + ("（未结束）" if not parsed.closed else "")
        out.append({"role": "assistant", "content": parsed.reasoning, "metadata": {"title": title}})
    out.append({"role": "assistant", "content": parsed.answer if parsed.form != "none" else text})
    return out


def check_prompt(prompt: str) -> str | None:
    if not prompt or not prompt.strip():
        return "请输入提示 / enter a prompt"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"提示过长：{len(prompt)} 字符，上限 {MAX_PROMPT_CHARS} / prompt too long"
    return None


def stats_line(tokens: int, ttft: float, latency: float) -> str:
    return f"{tokens} tokens · 首字 TTFT {ttft:.2f} s · 总耗时 {latency:.2f} s"


def plan_columns(state: AppState, blind: bool) -> tuple[list[str], list[str], str | None]:
    """(columns to run, pane labels, round id): blind mode picks two columns in random order, labelled A / B."""
    cols = state.engine.columns
    if not blind or len(cols) < 2:
        return cols, cols, None
    pair = random.sample(cols, 2)
    return pair, ["A", "B"], uuid.uuid4().hex[:12]


def run_compare(state: AppState, prompt: str, settings: Settings, blind: bool):
    """Generator of (labels, texts, stats, note, round_id) snapshots while the columns stream."""
    from .votes import record_round

    problem = LOADING if state.loading else state.problem or check_prompt(prompt)
    if problem:
        yield [], [], [], problem, None
        return
    if state.engine.lock.locked():
        yield [], [], [], "忙：正在为另一个请求生成，请稍候再试 / busy: one generation at a time", None
        return
    cols, labels, round_id = plan_columns(state, blind)
    if round_id:
        record_round(state.votes_dir, round_id, prompt, cols[0], cols[1])
    yield from _stream(state, prompt, settings, cols, labels, round_id)


def _stream(state: AppState, prompt: str, settings: Settings, cols: list[str], labels: list[str], round_id):
    from .streamer import BatchStreamer

    holder: dict = {}
    made = threading.Event()

    def factory(*args):
        holder["s"] = BatchStreamer(*args)
        made.set()
        return holder["s"]

    result: dict = {}

    def work() -> None:
        try:
            result["out"] = state.engine.generate(prompt, settings, cols, factory)
        except Exception as exc:  # noqa: BLE001 — shown in the page, the app keeps serving
            result["error"] = _first_line(exc)
        finally:
            made.set()

    worker = threading.Thread(target=work)
    worker.start()
    made.wait(timeout=600)
    texts = [""] * len(cols)
    streamer = holder.get("s")
    while streamer is not None:
        event = streamer.events.get()
        if event is None:
            break
        texts[event[0]] = event[1]
        yield labels, list(texts), [""] * len(cols), "", round_id
    worker.join()
    if "error" in result:
        yield labels, list(texts), [""] * len(cols), f"生成失败 / generation failed: {result['error']}", round_id
        return
    answers = result.get("out", ([], None))[0]
    stats = [stats_line(a.tokens, a.ttft, a.latency) for a in answers]
    yield labels, [a.text for a in answers] or texts, stats, "", round_id


def ranking_markdown(votes_dir: Path) -> str:
    from .ranking import rank
    from .votes import read_votes

    votes = read_votes(votes_dir)
    if not votes:
        return "尚无投票 / no votes yet"
    rows = ["| 名次 | 系统 | Bradley–Terry 分数 | 95% CI | 对局 |", "|---|---|---|---|---|"]
    for i, r in enumerate(rank(votes, rounds=300), 1):
        rows.append(f"| {i} | {html.escape(r.name)} | {r.score:+.2f} | [{r.low:+.2f}, {r.high:+.2f}] | {r.games} |")
    return "\n".join(rows)
