"""build_dataset CLI: happy paths and ≥20 bad inputs, each with a located message and the user's folder intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_ext.build_dataset import main

EXISTING = {"mine": {"file_name": "mine.json", "formatting": "alpaca"}}
GOOD_ALPACA = {"instruction": "解释对称加密", "input": "", "output": "对称加密用同一把密钥加解密。"}
GOOD_OPENAI = {"messages": [{"role": "user", "content": "什么是哈希？"}, {"role": "assistant", "content": "摘要函数。"}]}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder that already holds the user's own entry and data file."""
    folder = tmp_path / "dataset_info"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps(EXISTING), encoding="utf-8")
    (folder / "mine.json").write_text("[]", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def jsonl(path: Path, rows: list, *, raw: str | None = None) -> Path:
    path.write_text(raw if raw is not None else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_help(capsys):
    code, text = run(capsys, "--help")
    assert code == 0 and "--on-error" in text and "markdown" in text


def test_alpaca_happy_path_merges_and_writes_manifest(tmp_path, out, capsys):
    rows = [{"instruction": f"第{i}个问题：什么是密钥{i}？", "input": "", "output": f"密钥{i}是用于加密的秘密参数，编号{i}。"}
            for i in range(40)]
    src = jsonl(tmp_path / "a.jsonl", rows)
    code, text = run(capsys, "alpaca", src, "--name", "demo", "--out", out, "--format", "alpaca")
    assert code == 0, text
    info = json.loads((out / "dataset_info.json").read_text())
    assert list(info) == ["mine", "demo_train", "demo_val", "demo_test"] and info["mine"] == EXISTING["mine"]
    counts = {k: sum(1 for _ in (out / f"demo_{k}.jsonl").open(encoding="utf-8")) for k in ("train", "val", "test")}
    assert counts == {"train": 28, "val": 6, "test": 6}
    manifest = json.loads((out / "demo.manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 0 and manifest["counts"]["read"] == 40 and len(manifest["sources"][0]["sha256"]) == 64
    assert manifest["versions"]["llamafactory"] == "0.9.5"
    report = (out / "demo.report.md").read_text(encoding="utf-8")
    assert "| train | 28 |" in report and "## Dropped, by reason" in report
    assert "wrote" in text


def test_rerun_same_input_is_idempotent(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA])
    assert run(capsys, "alpaca", src, "--name", "d", "--out", out)[0] == 0
    first = snapshot(out)
    assert run(capsys, "alpaca", src, "--name", "d", "--out", out)[0] == 0
    assert {k: v for k, v in snapshot(out).items() if "manifest" not in k} == \
        {k: v for k, v in first.items() if "manifest" not in k}


def test_traditional_and_punctuation_are_normalized(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [{"instruction": "什麼是對稱加密?", "input": "", "output": "對稱加密,速度快."}])
    assert run(capsys, "alpaca", src, "--name", "t", "--out", out, "--split", "100/0/0")[0] == 0
    row = json.loads((out / "t_train.jsonl").read_text(encoding="utf-8"))
    assert row["messages"][0]["content"] == "什么是对称加密？" and row["messages"][1]["content"] == "对称加密，速度快。"


def test_nested_dict_fields_are_repaired(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [{"instruction": {"instruction": "解释哈希"}, "input": {"text": ""},
                                         "output": {"text": "哈希是摘要。"}}])
    assert run(capsys, "alpaca", src, "--name", "n", "--out", out, "--split", "100/0/0")[0] == 0
    row = json.loads((out / "n_train.jsonl").read_text(encoding="utf-8"))
    assert [m["content"] for m in row["messages"]] == ["解释哈希", "哈希是摘要。"]


def test_on_error_skip_writes_rejects(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [], raw=json.dumps(GOOD_ALPACA, ensure_ascii=False) + "\n{oops\n")
    code, text = run(capsys, "alpaca", src, "--name", "s", "--out", out, "--on-error", "skip", "--split", "100/0/0")
    assert code == 0 and "a.jsonl:2:" in text
    (reject,) = [json.loads(x) for x in (out / "s.rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 2 and reject["file"].endswith("a.jsonl")


def test_empty_output_is_dropped_and_counted(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA, {"instruction": "空回答", "input": "", "output": ""}])
    code, text = run(capsys, "alpaca", src, "--name", "e", "--out", out, "--split", "100/0/0")
    assert code == 0 and "a.jsonl:2 (instruction): empty_response" in text
    assert json.loads((out / "e.manifest.json").read_text())["drops"] == {"empty_response": 1}


# --- bad inputs: (source, file content as bytes or rows, expected message parts, exit code) -----------------------

BAD = {
    "invalid_json_line": ("alpaca", b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n', ["x.jsonl:2"], 1),
    "json_array_as_jsonl": ("alpaca", json.dumps([GOOD_ALPACA]).encode(), ["x.jsonl:1", ".json"], 1),
    "missing_keys": ("alpaca", [{"instruction": "只有问题"}], ["x.jsonl:1", "missing key(s) output"], 1),
    "nested_dict_without_text": ("alpaca", [{"instruction": {"foo": 1}, "output": "b"}], ["x.jsonl:1", "'instruction'"], 1),
    "history_wrong_shape": ("alpaca", [{**GOOD_ALPACA, "history": ["q"]}], ["x.jsonl:1", "history"], 1),
    "unknown_role": ("openai", [{"messages": [{"role": "bot", "content": "x"}]}], ["x.jsonl:1", "unrecognized role 'bot'"], 1),
    "no_assistant": ("openai", [{"messages": [{"role": "user", "content": "x"}]}], ["x.jsonl:1", "no assistant turn"], 1),
    "consecutive_user": ("openai", [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                                 {"role": "assistant", "content": "c"}]}], ["x.jsonl:1", "alternate"], 1),
    "list_of_parts": ("openai", [{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]},
                                              {"role": "assistant", "content": "b"}]}], ["x.jsonl:1", "list of parts"], 1),
    "missing_messages": ("openai", [{"conversation": []}], ["x.jsonl:1", "missing 'messages'"], 1),
    "unknown_message_key": ("openai", [{"messages": [{"role": "user", "content": "a", "img": 1},
                                                    {"role": "assistant", "content": "b"}]}], ["x.jsonl:1", "unknown key(s) img"], 1),
    "non_string_content": ("openai", [{"messages": [{"role": "user", "content": None},
                                                   {"role": "assistant", "content": "b"}]}], ["x.jsonl:1", "content is missing"], 1),
    "sharegpt_bad_from": ("sharegpt", [{"conversations": [{"from": "robot", "value": "a"}]}], ["x.jsonl:1", "robot"], 1),
    "unclosed_think": ("openai", [{"messages": [{"role": "user", "content": "a"},
                                              {"role": "assistant", "content": "<think>想了一半"}]}], ["x.jsonl:1", "close every tag"], 1),
    "gbk_file": ("alpaca", json.dumps(GOOD_ALPACA, ensure_ascii=False).encode("gbk") + b"\n", ["x.jsonl", "GBK", "iconv"], 1),
    "empty_file": ("alpaca", b"", ["x.jsonl", "empty"], 1),
    "binary_file": ("alpaca", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["x.jsonl", "binary"], 1),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_located_and_changes_nothing(case, tmp_path, out, capsys):
    source, content, parts, expected_code = BAD[case]
    src = tmp_path / "x.jsonl"
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        jsonl(src, content)
    before = snapshot(out)
    code, text = run(capsys, source, src, "--name", "bad", "--out", out)
    assert code == expected_code, text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert " — " in text  # every message carries a fix
    assert snapshot(out) == before


def test_bom_and_crlf_are_accepted(tmp_path, out, capsys):
    src = tmp_path / "x.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD_ALPACA, ensure_ascii=False) + "\r\n").encode("utf-8") * 1)
    code, text = run(capsys, "alpaca", src, "--name", "bom", "--out", out, "--split", "100/0/0")
    assert code == 0, text
    assert "\r" not in (out / "bom_train.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["a/b", "..", "../evil", ".hidden", "名字 有空格"])
def test_bad_dataset_names_are_usage_errors(name, tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA])
    before = snapshot(out)
    code, text = run(capsys, "alpaca", src, "--name", name, "--out", out)
    assert code == 2 and "--name" in text and snapshot(out) == before


def test_missing_path(tmp_path, out, capsys):
    before = snapshot(out)
    code, text = run(capsys, "alpaca", tmp_path / "nope.jsonl", "--name", "m", "--out", out)
    assert code == 1 and "nope.jsonl" in text and snapshot(out) == before


def test_conflicting_entry_name(tmp_path, out, capsys):
    (out / "dataset_info.json").write_text(json.dumps({**EXISTING, "c_train": {"file_name": "other.json"}}))
    before = snapshot(out)
    code, text = run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA]), "--name", "c", "--out", out)
    assert code == 2 and "entry 'c_train' already exists" in text and "--overwrite" in text
    assert snapshot(out) == before


def test_malformed_existing_dataset_info(tmp_path, out, capsys):
    (out / "dataset_info.json").write_text('{"mine": {"file_name": "mine.json"}\n')
    before = snapshot(out)
    code, text = run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA]), "--name", "c", "--out", out)
    assert code == 1 and "dataset_info.json:2: malformed JSON" in text and snapshot(out) == before


def test_write_failure_midway_leaves_no_partial_files(tmp_path, out, capsys):
    (out / "w_val.jsonl").mkdir()  # the val file cannot be written
    rows = [{"instruction": f"问题{i}是什么？", "input": "", "output": f"这是第{i}个不同的回答内容。"} for i in range(30)]
    before = snapshot(out)
    code, text = run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", rows), "--name", "w", "--out", out)
    assert code == 1 and "w_val.jsonl: is a folder where a data file must go" in text and "nothing was written" in text
    assert snapshot(out) == before and not any(p.name.startswith(".") for p in out.iterdir())


def test_bad_split_is_usage_error(tmp_path, out, capsys):
    code, text = run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA]), "--name", "s", "--out", out,
                     "--split", "70/30")
    assert code == 2 and "--split" in text


def test_overwrite_removes_an_earlier_builds_splits(tmp_path, out, capsys):
    rows = [{"instruction": f"问题{i}：什么是第{i}种密钥？", "input": "", "output": f"第{i}种密钥的回答，各不相同{i}。"}
            for i in range(40)]
    assert run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", rows), "--name", "m", "--out", out)[0] == 0
    assert run(capsys, "alpaca", jsonl(tmp_path / "b.jsonl", rows[:1]), "--name", "m", "--out", out,
               "--split", "100/0/0", "--overwrite")[0] == 0
    info = json.loads((out / "dataset_info.json").read_text())
    assert [k for k in info if k.startswith("m_")] == ["m_train"] and info["mine"] == EXISTING["mine"]
    assert not (out / "m_val.jsonl").exists() and not (out / "m_test.jsonl").exists()


def test_rerun_with_other_flags_but_same_data_is_accepted(tmp_path, out, capsys):
    src = jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA])
    assert run(capsys, "alpaca", src, "--name", "d", "--out", out, "--split", "100/0/0")[0] == 0
    code, text = run(capsys, "alpaca", src, "--name", "d", "--out", out, "--split", "100/0/0", "--quiet")
    assert code == 0, text  # manifest and report change (they record the command), the data does not


def test_written_files_are_readable_by_other_users(tmp_path, out, capsys):
    assert run(capsys, "alpaca", jsonl(tmp_path / "a.jsonl", [GOOD_ALPACA]), "--name", "p", "--out", out,
               "--split", "100/0/0")[0] == 0
    assert (out / "p_train.jsonl").stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600


def test_empty_earlier_turn_is_dropped(tmp_path, out, capsys):
    rows = [{**GOOD_ALPACA, "history": [["之前的问题", "  "]]}, GOOD_OPENAI]
    src = jsonl(tmp_path / "a.jsonl", rows[:1])
    code, text = run(capsys, "alpaca", src, "--name", "h", "--out", out, "--split", "100/0/0")
    assert code == 1 and "empty_turn" in text  # the only sample dropped: nothing left, nothing written


@pytest.mark.parametrize("content,reasoning_content,ok", [
    ("用 `<think>` 标签包住推理。", None, True),
    ("<think>\n甲\n</think>\n\n答案", "乙", False),
    ("答案", ["列表"], False),
])
def test_tags_in_code_and_reasoning_content_checks(content, reasoning_content, ok, tmp_path, out, capsys):
    msg = {"role": "assistant", "content": content}
    if reasoning_content is not None:
        msg["reasoning_content"] = reasoning_content
    src = jsonl(tmp_path / "o.jsonl", [{"messages": [{"role": "user", "content": "问题"}, msg]}])
    code, text = run(capsys, "openai", src, "--name", "r", "--out", out, "--split", "100/0/0")
    assert (code == 0) == ok, text
    if not ok:
        assert "o.jsonl:1:" in text and " — " in text


def test_belle_skip_keeps_good_rows_and_warns_when_the_file_is_small(tmp_path, out, capsys):
    good = [{"instruction": f"问题{i}是什么意思？", "input": "", "output": f"这是第{i}个回答。"} for i in range(9)]
    lines = [json.dumps(r, ensure_ascii=False) for r in good]
    lines.insert(3, "{broken")
    src = tmp_path / "belle.json"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, text = run(capsys, "belle", src, "--name", "b", "--out", out, "--on-error", "skip", "--split", "100/0/0")
    assert code == 0, text
    assert "belle.json:4:" in text and "fewer than --sample 2000" in text
    assert len((out / "b_train.jsonl").read_text(encoding="utf-8").splitlines()) == 9
