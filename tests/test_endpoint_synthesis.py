"""Reasoning synthesis against a real loopback server: what is accepted or rejected, that the answer is never
rewritten, that a failure is retried on the next run, and that a run killed with SIGKILL resumes without resending
a finished item."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from endpoint_server import Behaviour, ServerThread, free_port

from llamafactory_ext.endpoint.client import ChatClient, EndpointConfig
from llamafactory_ext.endpoint.synthesis import check, consistency, messages_for, synthesize
from llamafactory_ext.records import Sample, Turn

ANSWER = "AES 是一种分组密码，分组长度为 128 位，密钥长度可以是 128、192 或 256 位。"
GOOD = ("首先分析问题：题目问的是 AES 属于哪类密码以及它的参数。然后回忆标准：AES 是一种分组密码，"
        "每次处理 128 位的分组；密钥长度有 128、192 或 256 位三种。因此可以得出结论：AES 是分组密码，"
        "分组长度为 128 位，密钥长度可以是 128、192 或 256 位。")


def sample(i: int = 0, answer: str = ANSWER) -> Sample:
    return Sample(turns=(Turn("user", f"AES 是什么？（{i}）"), Turn("assistant", answer)), source="q.jsonl", line=i + 1)


def run(behaviour: Behaviour, samples: list[Sample], cache: Path | None = None, port: int | None = None, **cfg):
    with ServerThread(behaviour, port) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="teacher", **cfg), cache)
        try:
            return synthesize(samples, client)
        finally:
            client.close()


def test_good_reasoning_is_attached_and_the_answer_is_untouched():
    out, report = run(Behaviour(form="none", answer=GOOD), [sample()])
    assert report.accepted == 1 and out[0].turns[1].content == ANSWER
    assert out[0].turns[1].reasoning == GOOD
    assert out[0].meta["reasoning_synth"] == {"model": "teacher", "prompt_version": "reasoning-zh-v1"}


def test_reasoning_from_a_thinking_teacher_uses_the_visible_content():
    out, report = run(Behaviour(form="reasoning_content", reasoning="内部草稿", answer=GOOD), [sample()])
    assert report.accepted == 1 and out[0].turns[1].reasoning == GOOD


@pytest.mark.parametrize(("reply", "reason"), [
    ("", "empty"),
    ("<think>首先分析。因此如此。</think>", "tags"),
    (GOOD.replace("然后回忆标准", "根据参考答案"), "reference_phrasing"),
    ("因此。", "shape"),
    ("首先分析题目要求，需要考虑哈希函数的性质。然后逐步说明：哈希函数把任意长度的消息映射为定长摘要，"
     "具有抗碰撞性和单向性。因此哈希函数是一种压缩映射。", "inconsistent"),
])
def test_what_fails_the_checks_is_rejected_and_counted(reply, reason):
    out, report = run(Behaviour(form="none", answer=reply), [sample()])
    assert report.accepted == 0 and report.rejected == {reason: 1}
    assert out[0].turns[1].reasoning is None and out[0].turns[1].content == ANSWER


def test_samples_that_have_reasoning_are_not_asked():
    has = Sample(turns=(Turn("user", "q"), Turn("assistant", "a", "已有推理")))
    b = Behaviour(form="none", answer=GOOD)
    out, report = run(b, [has, sample()])
    assert report.asked == 1 and len(b.requests) == 1 and out[0] is has


def test_request_carries_question_and_answer_without_rewriting():
    msgs = messages_for(sample())
    assert ANSWER in msgs[1]["content"] and "AES 是什么" in msgs[1]["content"] and msgs[0]["role"] == "system"


def test_consistency_counts_the_answers_key_terms():
    assert consistency(GOOD, ANSWER) > 0.8
    assert consistency("完全无关的内容", ANSWER) < 0.1


def test_check_accepts_good_reasoning():
    assert check(sample(), GOOD) is None


def test_failures_are_not_cached_and_a_second_run_retries_only_them(tmp_path):
    cache, port = tmp_path / "c.sqlite", free_port()  # the cache key names the endpoint: keep its URL
    samples = [sample(i) for i in range(4)]
    bad = Behaviour(form="none", answer=GOOD, fail_first=100, fail_status=500)
    _, first = run(bad, samples, cache, port, max_retries=0)
    assert len(first.failed) == 4 and first.accepted == 0
    good = Behaviour(form="none", answer=GOOD)
    _, second = run(good, samples, cache, port)
    assert second.accepted == 4 and len(good.requests) == 4
    third_server = Behaviour(form="none", answer=GOOD)
    _, third = run(third_server, samples, cache, port)
    assert third.accepted == 4 and third.cached == 4 and third_server.requests == []


WORKER = """
import sys
from pathlib import Path
from llamafactory_ext.endpoint.client import ChatClient, EndpointConfig
from llamafactory_ext.endpoint.synthesis import synthesize
from llamafactory_ext.records import Sample, Turn
url, cache, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
samples = [Sample(turns=(Turn("user", f"问题{i}"), Turn("assistant", "答案"))) for i in range(n)]
client = ChatClient(EndpointConfig(base_url=url, model="m", concurrency=2), cache)
_, report = synthesize(samples, client)
print(report.asked, report.cached, flush=True)
"""


def _cached_questions(cache: Path) -> set[str]:
    db = sqlite3.connect(cache)
    rows = [json.loads(r[0]) for r in db.execute("SELECT response FROM responses")]
    db.close()
    return {r["message"]["content"] for r in rows}


def test_kill_9_mid_run_resumes_without_resending_finished_items(tmp_path):
    cache, n = tmp_path / "c.sqlite", 12
    b = Behaviour(form="none", answer=None, delay=0.15)  # replies "回答：<user text>", distinct per item
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with ServerThread(b) as srv:
        cmd = [sys.executable, "-c", WORKER, srv.url, str(cache), str(n)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(b.requests) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        finished = _cached_questions(cache)
        sent_before = len(b.requests)
        assert 0 < len(finished) < n
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resent = [r["user"] for r in b.requests[sent_before:]]
    assert not {c.removeprefix("回答：") for c in finished} & set(resent)  # no finished item sent again
    assert len(resent) == n - len(finished)  # every unfinished item once, no finished item again
    assert len(_cached_questions(cache)) == n


def test_build_dataset_synthesizes_records_and_resumes(tmp_path):
    from llamafactory_ext.build_dataset import main as build

    rows = [{"instruction": f"AES 是什么？（{i}）", "output": ANSWER} for i in range(12)]
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    port, out = free_port(), tmp_path / "out"
    argv = ["alpaca", str(src), "--name", "q", "--out", str(out), "--synthesize-reasoning", "--endpoint",
            f"http://127.0.0.1:{port}/v1", "--endpoint-model", "teacher", "--synth-cache", str(tmp_path / "c.sqlite"),
            "--no-near-dedup", "--quiet"]
    b = Behaviour(form="none", answer=GOOD)
    with ServerThread(b, port):
        assert build(argv) == 0
        first = len(b.requests)
        assert build([*argv, "--overwrite"]) == 0
    assert first == 12 and len(b.requests) == 12  # the rerun sent nothing
    manifest = json.loads((out / "q.manifest.json").read_text())
    synth = manifest["reasoning_synthesis"]
    assert synth["accepted"] == 12 and synth["prompt_version"] == "reasoning-zh-v1" and synth["model"] == "teacher"
    prov = [json.loads(x) for x in (out / "q.provenance.jsonl").read_text().splitlines()]
    assert all(p["reasoning_synth"]["model"] == "teacher" for p in prov)
    train = [json.loads(x) for x in (out / "q_train.jsonl").read_text().splitlines()]
    answer = train[0]["messages"][-1]["content"]
    assert answer.startswith("<think>\n首先分析问题") and answer.endswith(ANSWER)  # answer kept as written
    assert "sk-" not in json.dumps(manifest)


def test_synthesis_options_are_checked_before_anything_runs(tmp_path, capsys):
    from llamafactory_ext.build_dataset import main as build

    src = tmp_path / "q.jsonl"
    src.write_text('{"instruction": "q", "output": "a"}\n', "utf-8")
    assert build(["alpaca", str(src), "--name", "q", "--out", str(tmp_path / "o"), "--synthesize-reasoning"]) == 2
    assert "needs --endpoint URL and --endpoint-model NAME" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
