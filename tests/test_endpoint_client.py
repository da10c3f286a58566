"""The endpoint client against a real loopback server: the five reasoning formats, retries honouring Retry-After,
5xx, malformed bodies, refused ports, and the success-only cache (a second run sends nothing)."""

from __future__ import annotations

import pytest
from endpoint_server import Behaviour, ServerThread, free_port

from llamafactory_ext.endpoint.client import ChatClient, EndpointConfig, EndpointError
from llamafactory_ext.endpoint.reasoning import parse_message, parse_stream, parse_text

FORMS = ("inline", "prefilled", "reasoning", "reasoning_content", "reasoning_details")
MSG = [{"role": "user", "content": "什么是 AES？"}]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stream", [False, True])
def test_every_reasoning_format_streamed_or_not(form, stream, tmp_path):
    with ServerThread(Behaviour(form=form, reasoning="先分析。因此是分组密码。", answer="AES 是分组密码")) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", stream=stream, max_retries=0))
        done = client.complete(MSG)
    assert done.parsed.reasoning == "先分析。因此是分组密码。"
    assert done.parsed.answer == "AES 是分组密码"
    expected_form = {"reasoning": "reasoning", "reasoning_content": "reasoning_content"}.get(form, form)
    assert done.parsed.form == expected_form


def test_plain_answer_has_no_reasoning():
    assert parse_message({"content": "直接回答"}).reasoning is None


def test_unclosed_thought_is_an_empty_answer():
    parsed = parse_text("<think>\n想了很久，还没想完")
    assert parsed.closed is False and parsed.answer == "" and parsed.reasoning.startswith("想了很久")


def test_stream_deltas_accumulate_reasoning_content():
    deltas = [{"reasoning_content": "先"}, {"reasoning_content": "算"}, {"content": "答"}, {"content": "案"}]
    parsed = parse_stream(deltas)
    assert (parsed.reasoning, parsed.answer) == ("先算", "答案")


def test_429_burst_is_retried_honouring_retry_after():
    b = Behaviour(fail_first=2, fail_status=429, retry_after=1.0)
    with ServerThread(b) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", max_retries=3))
        done = client.complete(MSG)
    assert done.parsed.answer == "答案" and len(b.requests) == 3
    gaps = [b.requests[i + 1]["t"] - b.requests[i]["t"] for i in range(2)]
    assert all(g >= 0.95 for g in gaps), gaps  # the server asked for 1 s; the client waited at least that


def test_500_is_retried_then_reported_with_the_fix(tmp_path):
    b = Behaviour(fail_first=10, fail_status=500)
    with ServerThread(b) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", max_retries=2), tmp_path / "c.sqlite")
        with pytest.raises(EndpointError, match=r"HTTP 500 .* after 2 retries — check the server log"):
            client.complete(MSG)
        assert len(b.requests) == 3
        assert len(client.cache) == 0  # a failure is never cached


def test_malformed_body_is_a_located_error():
    with ServerThread(Behaviour(malformed=True)) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", max_retries=0))
        with pytest.raises(EndpointError, match=r"127\.0\.0\.1:\d+/v1: malformed response"):
            client.complete(MSG)


def test_refused_port_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient(EndpointConfig(base_url=url, model="m", max_retries=1, timeout=5))
    with pytest.raises(EndpointError, match="cannot connect .* start the server or fix --endpoint"):
        client.complete(MSG)


def test_cache_stores_successes_and_a_second_run_sends_nothing(tmp_path):
    b = Behaviour()
    jobs = [([{"role": "user", "content": f"问题{i}"}], {"temperature": 0.0}) for i in range(6)]
    with ServerThread(b) as srv:
        cfg = EndpointConfig(base_url=srv.url, model="m", concurrency=3)
        first = ChatClient(cfg, tmp_path / "c.sqlite")
        assert sorted(i for i, _ in first.map(jobs)) == list(range(6))
        first.close()
        second = ChatClient(cfg, tmp_path / "c.sqlite")
        results = dict(second.map(jobs))
    assert len(b.requests) == 6 and second.requests == 0
    assert all(r.cached for r in results.values())


def test_api_key_never_reaches_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with ServerThread(Behaviour()) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", api_key_env="MY_KEY"), tmp_path / "c.sqlite")
        client.complete(MSG)
        client.close()
    assert b"sk-secret-123" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_unknown_config_key_is_refused():
    with pytest.raises(ValueError, match="retries"):
        EndpointConfig(base_url="http://x/v1", model="m", retries=3)


def test_leaving_map_early_cancels_jobs_not_started():
    b = Behaviour(delay=0.3)
    jobs = [([{"role": "user", "content": f"问题{i}"}], {}) for i in range(20)]
    with ServerThread(b) as srv:
        client = ChatClient(EndpointConfig(base_url=srv.url, model="m", concurrency=2))
        results = client.map(jobs)
        next(results)
        results.close()  # what Ctrl-C does to the loop that consumes map()
    assert len(b.requests) <= 4  # the two in flight, maybe two more started meanwhile; never all 20
