"""build_dataset on markdown notes: the shipped corpus end to end, and bad notes located with the out folder intact."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from llamafactory_ext.build_dataset import main

CORPUS = Path(__file__).parents[1] / "examples" / "crypto_notes"
EXISTING = {"mine": {"file_name": "mine.json", "formatting": "alpaca"}}
SPLITS = ("train", "val", "test")
# Traditional spellings in the corpus → what plain t2s (character by character) makes of them.
TRADITIONAL = {"資訊": "资讯", "金鑰": "金钥", "軟體": "软体", "課程": "课程"}


def make_out(folder: Path) -> Path:
    """An output folder that already holds the user's own entry and data file."""
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text(json.dumps(EXISTING), encoding="utf-8")
    (folder / "mine.json").write_text("[]", encoding="utf-8")
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return make_out(tmp_path / "dataset_info")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry of the folder (a stray temp dir shows up as None) with its bytes."""
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


def call(*args) -> tuple[int, str]:
    """main() with stdout and stderr captured together (usable from module-scoped fixtures)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main([str(a) for a in args])
    return code, buf.getvalue()


def rows(folder: Path, name: str) -> list[dict]:
    found = []
    for split in SPLITS:
        path = folder / f"{name}_{split}.jsonl"
        if path.exists():
            found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return found


def assistant_texts(found: list[dict]) -> list[str]:
    return [m["content"] for r in found for m in r["messages"] if m["role"] == "assistant"]


def all_text(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """The shipped corpus built once with the defaults (reasoning mode, t2s)."""
    folder = make_out(tmp_path_factory.mktemp("corpus") / "dataset_info")
    code, text = call("markdown", CORPUS, "--name", "crypto", "--out", folder)
    return code, text, folder


# --- the shipped corpus ----------------------------------------------------------------------------------------


def test_corpus_builds_and_merges_with_existing_entry(corpus):
    code, text, folder = corpus
    assert code == 0, text
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    assert list(info) == ["mine", "crypto_train", "crypto_val", "crypto_test"]
    assert info["mine"] == EXISTING["mine"] and (folder / "mine.json").read_text() == "[]"
    for split in SPLITS:
        assert info[f"crypto_{split}"]["file_name"] == f"crypto_{split}.jsonl"
        assert (folder / f"crypto_{split}.jsonl").stat().st_size > 0
    assert "wrote" in text


def test_corpus_reasoning_is_in_lf_think_format(corpus):
    _, _, folder = corpus
    answers = assistant_texts(rows(folder, "crypto"))
    with_reasoning = [a for a in answers if "<think>" in a]
    assert len(with_reasoning) >= 30, "the corpus has reasoning on most answers"
    for a in with_reasoning:
        assert a.startswith("<think>\n"), a[:80]
        assert a.count("<think>") == 1 and a.count("\n</think>\n\n") == 1, a[:200]
        assert a.split("\n</think>\n\n", 1)[1].strip(), "an answer follows the reasoning"
    assert "【第2层思考】" in "".join(with_reasoning)  # nested blocks are flattened, not lost
    assert "<thinking>" not in all_text(folder) and "</thinking>" not in all_text(folder)


def test_corpus_traditional_characters_become_simplified(corpus):
    _, _, folder = corpus
    source = "".join(p.read_text(encoding="utf-8") for p in CORPUS.glob("*.md"))
    data = "".join((folder / f"crypto_{s}.jsonl").read_text(encoding="utf-8") for s in SPLITS)
    for traditional, simplified in TRADITIONAL.items():
        assert traditional in source, f"corpus no longer holds {traditional}"
        assert traditional not in data and simplified in data, traditional
    assert "对称加密，速度快，" in data  # half-width punctuation between Chinese characters is made full-width


def test_corpus_tw2sp_maps_taiwan_terms(tmp_path):
    # 演算法 is spelled with characters that are already simplified: only the phrase mode turns it into 算法.
    folder = make_out(tmp_path / "o")
    code, text = call("markdown", CORPUS, "--name", "c", "--out", folder, "--t2s", "tw2sp", "--quiet")
    assert code == 0, text
    data = "".join((folder / f"c_{s}.jsonl").read_text(encoding="utf-8") for s in SPLITS)
    for word in ("演算法", "金鑰", "金钥", "資訊", "资讯", "軟體", "软体"):
        assert word not in data, word
    assert "算法" in data and "密钥" in data and "软件" in data


def test_corpus_code_fences_keep_their_language(corpus):
    _, _, folder = corpus
    found = rows(folder, "crypto")
    contents = [m["content"] for r in found for m in r["messages"]]
    assert any("```python\n" in c for c in contents)
    assert not any("```\nimport" in c for c in contents)  # no fence lost its language tag


def test_corpus_report_lists_term_categories(corpus):
    _, _, folder = corpus
    report = (folder / "crypto.report.md").read_text(encoding="utf-8")
    assert "Term-category" in report
    for category in ("symmetric", "hash", "signature"):
        assert re.search(rf"^\| {category} \| \d+ \| \d+ \| \d+ \|$", report, re.M), category


def test_corpus_plain_mode_drops_reasoning(tmp_path):
    folder = make_out(tmp_path / "o")
    code, text = call("markdown", CORPUS, "--name", "p", "--out", folder,
                      "--template-mode", "plain", "--plain-reasoning", "drop", "--quiet")
    assert code == 0, text
    found = rows(folder, "p")
    assert found
    data = json.dumps(found, ensure_ascii=False)
    assert "<think" not in data and "</think" not in data and "【第2层思考】" not in data


def test_thinking_only_model_refuses_samples_without_reasoning(out):
    before = snapshot(out)
    code, text = call("markdown", CORPUS, "--name", "q", "--out", out, "--model", "qwen3-4b-thinking")
    assert code == 1, text  # a data problem for this model
    assert "qwen3-4b-thinking" in text
    assert re.search(r"\d+ of \d+ samples \(\d+\.\d%\) have no reasoning", text), text
    assert "Fix:" in text and "--require-reasoning" in text
    assert snapshot(out) == before


def test_thinking_only_model_with_require_reasoning(out):
    code, text = call("markdown", CORPUS, "--name", "q", "--out", out, "--model", "qwen3-4b-thinking",
                      "--require-reasoning")
    assert code == 0, text
    answers = assistant_texts(rows(out, "q"))
    assert answers and all(a.startswith("<think>\n") and a.count("\n</think>\n\n") == 1 for a in answers)
    assert json.loads((out / "q.manifest.json").read_text(encoding="utf-8"))["drops"].get("no_reasoning", 0) > 0


# --- bad notes: (files under tmp_path/notes, input path relative to it, exit code, expected message parts) -------

Q = "# 标题\n\n问：什么是 AES？\n"  # lines 1-3; the question is on line 3

BAD = {
    "unclosed_thinking": (
        {"notes.md": Q + "<thinking>\n想一想\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:4:1: ", "<thinking> opened here is never closed", "the answer starts at line 6"]),
    "stray_closing": (
        {"notes.md": Q + "答：分组密码。\n</thinking>\n"}, "notes.md", 1,
        ["notes.md:5:1: ", "closing </thinking> has no opening tag"]),
    "mismatched_think_thinking": (
        {"notes.md": Q + "<think>\n想一想\n</thinking>\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:6:1: ", "</thinking> does not match <think> opened at 4:1"]),
    "empty_thinking": (
        {"notes.md": Q + "<thinking></thinking>\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:4:1: ", "empty <thinking> block"]),
    "thinking_without_answer_after": (
        {"notes.md": Q + "答：\n<thinking>\n想一想\n</thinking>\n"}, "notes.md", 1,
        ["notes.md:7:1: ", "no answer follows it", "the question at line 3"]),
    "question_without_answer": (
        {"notes.md": "# 标题\n\n问：\n"}, "notes.md", 1,
        ["notes.md:3:1: ", "question has no answer", "答："]),
    "nested_unclosed_inner_tag": (
        {"notes.md": Q + "<think>\n外层\n  <thinking>\n  内层\n</think>\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:8:1: ", "</think> does not match <thinking> opened at 6:3"]),
    "nested_both_unclosed": (
        {"notes.md": Q + "<thinking>\n外层\n  <thinking>\n  内层\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:6:3: ", "<thinking> opened here is never closed", "line 8"]),
    "stray_closing_inside_list": (
        {"notes.md": "# 标题\n\n- 第一点\n- 第二点 </thinking>\n- 第三点\n"}, "notes.md", 1,
        ["notes.md:4:7: ", "closing </thinking> has no opening tag"]),
    "unclosed_fence_swallows_closing_tag": (
        {"notes.md": Q + "<thinking>\n想一想\n```python\nx = 1\n</thinking>\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:4:1: ", "never closed", "code fence opened at line 6"]),
    "crlf_line_numbers": (
        {"notes.md": (Q + "<thinking>\n想一想\n答：分组密码。\n").replace("\n", "\r\n")}, "notes.md", 1,
        ["notes.md:4:1: ", "<thinking> opened here is never closed"]),
    "thinking_before_any_question_or_heading": (
        {"notes.md": "<thinking>\n随便想想\n</thinking>\n\n正文。\n"}, "notes.md", 1,
        ["notes.md:1:1: ", "belongs to no question or section"]),
    "empty_nested_block": (
        {"notes.md": Q + "<think>\n外\n<think> </think>\n</think>\n答：分组密码。\n"}, "notes.md", 1,
        ["notes.md:6:1: ", "empty <think> block"]),
    "faq_item_without_answer": (
        {"notes.md": "# 标题\n\n- **甲是什么？**\n- **乙是什么？** 丙。\n"}, "notes.md", 1,
        ["notes.md:3:3: ", "question has no answer"]),
    "two_questions_without_answers": (
        {"notes.md": "# 标题\n\n问：甲？\n\n## 小节\n\n问：乙？\n答：好。\n\n问：丙？\n"}, "notes.md", 1,
        ["notes.md:3:1: ", "before line 5", "notes.md:10:1: ", "2 data error(s)"]),
    "error_in_second_file_of_folder": (
        {"a.md": "# 甲\n\n问：好？\n答：好。\n", "sub/b.md": "# 乙\n\n问：坏？\n<think>\n"}, ".", 1,
        ["b.md:4:1: ", "<think> opened here is never closed"]),
    "binary_file_named_notes_md": (
        {"notes.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, ".", 1, ["notes.md: ", "binary file (a PNG image)"]),
    "nul_bytes_in_notes_md": (
        {"notes.md": "# 标题\n".encode() + b"\x00\x01abc"}, "notes.md", 1, ["notes.md: ", "binary file (NUL bytes)"]),
    "gbk_encoded": (
        {"notes.md": (Q + "答：分组密码。\n").encode("gbk")}, "notes.md", 1,
        ["notes.md:1:3: ", "looks GBK-encoded", "iconv -f GBK -t UTF-8"]),
    "gbk_after_ascii_lines": (
        {"notes.md": "# Notes\n\nQ: what?\nA: 分组密码。\n".encode("gbk")}, "notes.md", 1,
        ["notes.md:4:4: ", "looks GBK-encoded"]),
    "empty_file": ({"notes.md": b""}, "notes.md", 1, ["notes.md: ", "file is empty"]),
    "whitespace_only": ({"notes.md": "  \n\n\t\n"}, "notes.md", 1, ["notes.md: ", "only whitespace"]),
    "folder_without_markdown": (
        {"readme.txt": "问：甲？\n答：乙。\n"}, ".", 1, ["notes: ", "folder holds no .md"]),
    "missing_path": ({}, "nope.md", 1, ["nope.md: ", "no such file or folder"]),
}


def write_notes(root: Path, files: dict[str, str | bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_notes_are_located_and_change_nothing(case, tmp_path, out):
    files, target, expected_code, parts = BAD[case]
    write_notes(tmp_path / "notes", files)
    before = snapshot(out)
    # --strict: a question without an answer is an error (by default it is a counted drop, tested below)
    code, text = call("markdown", tmp_path / "notes" / target, "--name", "bad", "--out", out, "--strict")
    assert code == expected_code, text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert " — " in text  # every message carries a fix
    assert snapshot(out) == before


# --- tags that are text, and --on-error skip --------------------------------------------------------------------

PASS = {
    "backtick_fence": ("问：怎样写思考标签？\n答：像这样：\n\n```python\nprint(\"<thinking>\")\n```\n",
                       "```python\nprint(\"<thinking>\")\n```"),
    "tilde_fence_closing_tag": ("问：怎样写？\n答：如下：\n\n~~~\n</think>\n~~~\n", "~~~\n</think>\n~~~"),
    "inline_code": ("问：标签叫什么？\n答：写作 `<thinking>` 和 `</thinking>`。\n", "`<thinking>` 和 `</thinking>`"),
}


@pytest.mark.parametrize("case", sorted(PASS))
def test_tag_inside_code_is_kept_as_text(case, tmp_path, out):
    body, kept = PASS[case]
    write_notes(tmp_path / "notes", {"notes.md": "# 标题\n\n" + body})
    code, text = call("markdown", tmp_path / "notes", "--name", "code", "--out", out, "--split", "100/0/0")
    assert code == 0, text
    (row,) = rows(out, "code")
    assert kept in row["messages"][1]["content"]
    assert not row["messages"][1]["content"].startswith("<think>")  # not taken as reasoning


def test_on_error_skip_writes_good_samples_and_rejects(tmp_path, out):
    notes = "# 标题\n\n问：什么是 AES？\n答：一种分组密码。\n\n问：\n\n问：什么是 SHA-256？\n答：一种哈希函数。\n"
    write_notes(tmp_path / "notes", {"notes.md": notes})
    code, text = call("markdown", tmp_path / "notes", "--name", "s", "--out", out, "--on-error", "skip",
                      "--split", "100/0/0", "--strict")
    assert code == 0, text
    assert "notes.md:6:1: question has no answer — " in text and "s.rejects.jsonl" in text
    (reject,) = [json.loads(x) for x in (out / "s.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert reject["line"] == 6 and reject["col"] == 1 and reject["file"].endswith("notes.md") and reject["fix"]
    assert [r["messages"][0]["content"] for r in rows(out, "s")] == ["什么是 AES？", "什么是 SHA-256？"]
    assert json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))["mine"] == EXISTING["mine"]


def test_question_without_answer_is_a_located_drop_by_default(tmp_path, out):
    notes = "# 标题\n\n问：什么是 AES？\n答：一种分组密码。\n\n问：\n\n问：什么是 SHA-256？\n答：一种哈希函数。\n"
    write_notes(tmp_path / "notes", {"notes.md": notes})
    code, text = call("markdown", tmp_path / "notes", "--name", "s", "--out", out, "--split", "100/0/0")
    assert code == 0, text
    assert "notes.md:6 (question): no_answer" in text
    (drop,) = [json.loads(x) for x in (out / "s.drops.jsonl").read_text(encoding="utf-8").splitlines()]
    assert drop["file"].endswith("notes.md") and drop["line"] == 6 and drop["reason"] == "no_answer"
    assert len(rows(out, "s")) == 2


def test_on_error_skip_drops_only_the_unreadable_file(tmp_path, out):
    write_notes(tmp_path / "notes", {"a.md": "# 甲\n\n问：好？\n答：好。\n", "b.md": "# 乙\n\n问：坏？\n<think>\n"})
    code, text = call("markdown", tmp_path / "notes", "--name", "s", "--out", out, "--on-error", "skip",
                      "--split", "100/0/0")
    assert code == 0, text
    (reject,) = [json.loads(x) for x in (out / "s.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert reject["file"].endswith("b.md") and reject["line"] == 4
    assert [r["messages"][1]["content"] for r in rows(out, "s")] == ["好。"]


ZERO_LEFT = {
    "every_record_rejected_under_skip": ("问：什么是 AES？\n<thinking>\n想一想\n答：分组密码。\n", ["--on-error", "skip"]),
    "every_sample_dropped_by_require_reasoning": ("问：什么是 AES？\n答：分组密码。\n", ["--require-reasoning"]),
}


@pytest.mark.parametrize("case", sorted(ZERO_LEFT))
def test_no_sample_left_is_an_error_and_writes_nothing(case, tmp_path, out):
    body, flags = ZERO_LEFT[case]
    write_notes(tmp_path / "notes", {"notes.md": "# 标题\n\n" + body})
    before = snapshot(out)
    code, text = call("markdown", tmp_path / "notes", "--name", "z", "--out", out, *flags)
    assert code == 1, text
    assert " — " in text and snapshot(out) == before


def test_weak_reasoning_is_warned_with_its_line_and_dropped_in_strict_mode(tmp_path, out):
    body = ("# 哈希\n\n问：SHA-256 的输出多长？\n\n<thinking>\n256 位。\n</thinking>\n\n答：256 位，即 32 字节。\n\n"
            "问：SM3 的输出多长？\n\n<thinking>\n首先分析问题：SM3 是国密杂凑算法。然后回忆标准：输出 256 位。"
            "因此答案是 256 位。\n</thinking>\n\n答：256 位。\n")
    write_notes(tmp_path / "notes", {"notes.md": body})
    code, text = call("markdown", tmp_path / "notes", "--name", "w", "--out", out, "--split", "100/0/0")
    assert code == 0 and "notes.md:3: reasoning no_conclusion" in text
    code, text = call("markdown", tmp_path / "notes", "--name", "w2", "--out", out, "--split", "100/0/0",
                      "--strict-reasoning")
    assert code == 0 and "weak_reasoning" in text
    rows = (out / "w2_train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 and "SM3" in rows[0]
