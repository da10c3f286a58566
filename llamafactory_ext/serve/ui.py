"""Gradio components and their wiring for app.py's logic (kept apart so the logic is testable without a browser)."""

from __future__ import annotations

import html

from .app import MAX_COLUMNS, STATUS_SECONDS, AppState, messages, ranking_markdown, run_compare
from .engine import Settings
from .status import status_markdown

OUTCOME_BUTTONS = (("A 更好", "a"), ("B 更好", "b"), ("平局 tie", "tie"), ("都不好 both bad", "both_bad"))


def notice_text(state: AppState) -> str:
    lines = [f"⚠️ {html.escape(state.problem)}"] if state.problem else []
    lines += [f"⚠️ 列 {html.escape(n)} 未加载：{html.escape(msg)}" for n, msg in state.engine.errors.items()]
    if not state.problem and state.probes:
        lines.append(f"✅ 自检通过：{len(state.probes)} 列各不相同 / self-test passed")
    return "  \n".join(lines)


def build(state: AppState):
    import gradio as gr

    with gr.Blocks(title="并排对比 · llamafactory_ext", analytics_enabled=False) as demo:
        gr.Markdown("## 基座与微调模型并排对比 / base vs adapters, side by side")
        status = gr.Markdown(status_markdown(state.engine.state), elem_id="status")
        gr.Timer(STATUS_SECONDS).tick(lambda: status_markdown(state.engine.state), outputs=status, api_name="status")
        notice = gr.Markdown(notice_text(state), elem_id="notice")
        gr.Timer(STATUS_SECONDS).tick(lambda: notice_text(state), outputs=notice, api_name="notice")
        prompt = gr.Textbox(label="提示 Prompt", lines=3, elem_id="prompt")
        reference = _sample_picker(gr, state, prompt)
        settings = _settings(gr, state)
        go = gr.Button("对比生成 Compare", variant="primary", elem_id="go")
        panes, stats = _panes(gr, state)
        round_id = gr.State(None)
        ranking = gr.Markdown(ranking_markdown(state.votes_dir), elem_id="ranking")
        _votes(gr, state, round_id, ranking, notice)
        def compare(*values):  # a generator function, so gradio streams each snapshot
            yield from _compare(state, *values)

        go.click(compare, inputs=[prompt, *settings], outputs=[*panes, *stats, notice, round_id],
                 concurrency_limit=1, api_name="compare")
        del reference
    return demo


def _sample_picker(gr, state: AppState, prompt):
    choices = [f"#{i + 1} {s['messages'][-2]['content'][:40]}" for i, s in enumerate(state.samples)]
    picker = gr.Dropdown(choices=choices, label="从测试集选择样本 / pick a test-split sample", visible=bool(choices),
                         elem_id="sample")
    reference = gr.Textbox(label="参考答案 / reference", interactive=False, visible=bool(choices), lines=3)

    def pick(choice: str):
        row = state.samples[int(choice.split()[0][1:]) - 1]
        return row["messages"][-2]["content"], row["messages"][-1]["content"]

    picker.change(pick, inputs=picker, outputs=[prompt, reference], api_name="pick")
    return reference


def _settings(gr, state: AppState) -> list:
    r = state.engine.recipe
    with gr.Accordion("生成设置 / generation (shared by all columns)", open=False):
        max_new = gr.Slider(8, 8192, value=int(r.get("max_new_tokens", 512)), step=8, label="max_new_tokens")
        temperature = gr.Slider(0.0, 1.5, value=float(r.get("temperature", 0.6)), step=0.05, label="temperature")
        top_p = gr.Slider(0.05, 1.0, value=float(r.get("top_p", 0.95)), step=0.05, label="top_p")
        greedy = gr.Checkbox(value=not r.get("do_sample", True), label="贪心解码 greedy")
        thinking = gr.Checkbox(value=bool(r.get("enable_thinking", True)), label="思考模式 thinking (reasoning templates)")
        blind = gr.Checkbox(value=False, label="盲评 blind A/B (two random columns, names hidden)", elem_id="blind")
    return [max_new, temperature, top_p, greedy, thinking, blind]


def _panes(gr, state: AppState):
    panes, stats = [], []
    cols = state.engine.columns
    with gr.Row():
        for i in range(MAX_COLUMNS):
            with gr.Column(min_width=220):
                label = cols[i] if i < len(cols) else f"列 {i + 1}"
                panes.append(gr.Chatbot(type="messages", label=label, elem_id=f"pane{i}", height=360,
                                        visible=i < len(cols) + len(state.engine.errors)))
                stats.append(gr.Markdown(elem_id=f"stats{i}"))
    return panes, stats


def _votes(gr, state: AppState, round_id, ranking, notice) -> None:
    from .votes import record_vote

    def vote(outcome: str, rid: str | None):
        if not rid:
            return ranking_markdown(state.votes_dir), "先在盲评模式下生成一轮 / generate a blind round first"
        record_vote(state.votes_dir, rid, outcome)
        return ranking_markdown(state.votes_dir), f"已记录投票 / vote recorded ({outcome})"

    with gr.Row():
        for text, outcome in OUTCOME_BUTTONS:
            gr.Button(text, elem_id=f"vote_{outcome}").click(lambda rid, o=outcome: vote(o, rid), inputs=round_id,
                                                              outputs=[ranking, notice], api_name=f"vote_{outcome}")


def _compare(state: AppState, prompt, max_new, temperature, top_p, greedy, thinking, blind):
    import gradio as gr

    settings = Settings(int(max_new), float(temperature), float(top_p), bool(greedy), bool(thinking))
    for labels, texts, stats, note, rid in run_compare(state, prompt, settings, bool(blind)):
        panes = [gr.update(value=messages(texts[i]), label=labels[i], visible=True) if i < len(labels)
                 else gr.update(value=[], visible=not labels and i < len(state.engine.columns))
                 for i in range(MAX_COLUMNS)]
        stat = [stats[i] if i < len(stats) else "" for i in range(MAX_COLUMNS)]
        yield [*panes, *stat, note or notice_text(state), rid]
