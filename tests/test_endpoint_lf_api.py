"""Against a real `llamafactory-cli api` on 127.0.0.1 serving the tiny Qwen3 model: synthesis validates what a
random model writes and a second run sends nothing; endpoint predictions match LF's in-process predict (greedy)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import LF_ENV, lf_command
from endpoint_server import free_port

from llamafactory_ext.endpoint.__main__ import main as endpoint_main
from llamafactory_ext.endpoint.client import ChatClient, EndpointConfig
from llamafactory_ext.endpoint.synthesis import synthesize
from llamafactory_ext.records import Sample, Turn

pytestmark = [pytest.mark.lf, pytest.mark.slow]
MAX_NEW = 24  # why: a random tiny model never stops; enough tokens to give the metrics something to score
QUESTIONS = ["什么是 AES？", "RSA 的安全性基于什么？", "解释一下哈希函数。", "ECB 模式有什么问题？",
             "什么是数字签名？", "Diffie-Hellman 做什么用？"]


@pytest.fixture(scope="module")
def lf_api(tiny_qwen3_real, tmp_path_factory):
    work = tmp_path_factory.mktemp("lf_api")
    cfg = work / "serve.yaml"
    cfg.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_qwen3_real), "template": "qwen3",
                                   "infer_backend": "huggingface"}), encoding="utf-8")
    port = free_port()
    env = {**os.environ, **LF_ENV, "API_HOST": "127.0.0.1", "API_PORT": str(port), "API_MODEL_NAME": "tiny"}
    log = (work / "api.log").open("w")
    proc = subprocess.Popen(lf_command(["api", str(cfg)]), cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc, work / "api.log")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"llamafactory-cli api exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"llamafactory-cli api not ready in {timeout} s:\n{log.read_text()[-4000:]}")


def test_synthesis_rejects_nonsense_and_a_second_run_sends_nothing(lf_api, tmp_path):
    samples = [Sample(turns=(Turn("user", q), Turn("assistant", "这是标准答案。"))) for q in QUESTIONS[:3]]
    cfg = EndpointConfig(base_url=lf_api, model="tiny", concurrency=1)
    params = {"max_tokens": MAX_NEW, "do_sample": False}
    first_client = ChatClient(cfg, tmp_path / "c.sqlite")
    out, first = synthesize(samples, first_client, params=params)
    first_client.close()
    assert first.asked == 3 and first.accepted == 0 and sum(first.rejected.values()) == 3 and not first.failed
    assert all(s.turns[1].reasoning is None and s.turns[1].content == "这是标准答案。" for s in out)
    second_client = ChatClient(cfg, tmp_path / "c.sqlite")
    _, second = synthesize(samples, second_client, params=params)
    assert second_client.requests == 0 and second.cached == 3 and second.rejected == first.rejected


def _dataset(folder: Path) -> None:
    folder.mkdir()
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"答：{q}"}]}
            for q in QUESTIONS]
    (folder / "t_test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    entry = {"file_name": "t_test.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                      "system_tag": "system"}}
    (folder / "dataset_info.json").write_text(json.dumps({"t_test": entry}), "utf-8")


def test_endpoint_predictions_match_in_process_predict(lf_api, tiny_qwen3_real, tmp_path, run_lf):
    data = tmp_path / "data"
    _dataset(data)
    recipe = {"model_name_or_path": str(tiny_qwen3_real), "template": "qwen3", "stage": "sft", "do_predict": True,
              "finetuning_type": "lora", "predict_with_generate": True, "eval_dataset": "t_test",
              "dataset_dir": str(data), "cutoff_len": 256, "max_new_tokens": MAX_NEW, "do_sample": False,
              "per_device_eval_batch_size": 1, "output_dir": str(tmp_path / "local"), "report_to": "none"}
    (tmp_path / "predict.yaml").write_text(yaml.safe_dump(recipe), "utf-8")
    run_lf(["train", str(tmp_path / "predict.yaml")], cwd=tmp_path)
    served = tmp_path / "served"
    code = endpoint_main(["predict", "--endpoint", lf_api, "--model", "tiny", "--dataset-dir", str(data),
                          "--name", "t", "--recipe", str(tmp_path / "predict.yaml"), "--out", str(served),
                          "--concurrency", "1"])
    assert code == 0
    local = [json.loads(x) for x in (tmp_path / "local" / "generated_predictions.jsonl").read_text().splitlines()]
    remote = [json.loads(x) for x in (served / "generated_predictions.jsonl").read_text().splitlines()]
    _metrics_agree(lf_api, data, tmp_path)
    # LF's label is the template-rendered target: qwen3 adds an empty think block to data without reasoning
    assert [r["label"] for r in remote] == [re.sub(r"^<think>\s*</think>\s*", "", r["label"]).strip() for r in local]
    same = sum(a["predict"] == b["predict"] for a, b in zip(local, remote, strict=True))
    assert same >= len(local) - 1, [(a["predict"], b["predict"]) for a, b in zip(local, remote, strict=True)]


def _metrics_agree(url: str, data: Path, tmp: Path) -> None:
    """evaluate on the in-process predictions and evaluate --endpoint: LF-parity metrics within ±0.5 on the answer
    view. (The full view differs by construction: LF's label is the template-rendered target, which for qwen3
    carries the empty think block LF adds to data without reasoning; the served run's label is the data's answer.)"""
    from llamafactory_ext.evaluate import main as evaluate

    assert evaluate(["metrics", str(tmp / "local"), "--out", str(tmp / "local_eval")]) == 0
    assert evaluate(["metrics", "--endpoint", url, "--model", "tiny", "--name", "t", "--dataset-dir", str(data),
                     "--recipe", str(tmp / "predict.yaml"), "--out", str(tmp / "served_eval"), "--concurrency", "1"]) == 0
    local = json.loads((tmp / "local_eval" / "eval_totals.json").read_text())["metrics"]
    served = json.loads((tmp / "served_eval" / "eval_totals.json").read_text())
    assert served["perplexity"]["available"] is False  # said, not guessed
    for key in ("bleu-4", "rouge-1", "rouge-2", "rouge-l", "char_f1"):
        assert abs(local["answer"][key] - served["metrics"]["answer"][key]) <= 0.5, key
