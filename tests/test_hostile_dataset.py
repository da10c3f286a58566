"""Hostile input to build_dataset: every case ends in a located message with its fix (or correct output),
never a traceback, with the output folder byte-identical when nothing may be written and no temp file left.

Each case builds its inputs in a temporary folder; the output folder starts with the user's own entry and file.
Cases that could hang on a FIFO run in a subprocess with a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from llamafactory_ext.build_dataset import main

USER = {"mine": {"file_name": "mine.json", "formatting": "alpaca"}}
GOOD = {"instruction": "什么是对称加密？", "input": "", "output": "加解密使用同一把密钥的加密方式。"}
NOTE = "# 分组密码\n\n问：什么是 AES？\n答：AES 是一种分组长度为 128 位的对称分组密码。\n"
DEEP = "[" * 10_000 + "]" * 10_000


def folder_hash(folder: Path) -> str:
    """One hash over every path, its type and its bytes (links by their target): byte-identical or not."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode("utf-8", "surrogateescape"))
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode("utf-8", "surrogateescape"))
        elif p.is_file():
            h.update(b"F" + p.read_bytes())
        else:
            h.update(b"D")
    return h.hexdigest()


def leftovers(*folders: Path) -> list[str]:
    return [p.name for f in folders if f.is_dir() for p in f.rglob("*")
            if p.name.startswith(".lfx-") or p.name.endswith(".tmp")]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


def jsonl(path: Path, *rows: object) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def call(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(argv)
    return code, buf.getvalue()


def call_subprocess(argv: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "llamafactory_ext.build_dataset", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # a FIFO opened would hang: fail instead
    return proc.returncode, proc.stdout + proc.stderr


@dataclass
class Case:
    setup: Callable[[Path, Path], list[str]]  # (tmp, out) → argv after the source kind
    code: int
    parts: tuple[str, ...]  # fragments of the message: the place and the fix
    same: bool = True  # the output folder must stay byte-identical
    subprocess: bool = False


def a(source: str, path: Path, *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, o: [source, str(path), *extra]


# ---------------------------------------------------------------- cases on input files


def c_surrogate_alpaca(t: Path, o: Path) -> list[str]:
    return ["alpaca", str(write(t / "s.jsonl", '{"instruction": "a \\ud800 b", "output": "c"}\n'))]


def c_surrogate_sharegpt(t: Path, o: Path) -> list[str]:
    row = '{"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "答 \\udfff"}]}\n'
    return ["sharegpt", str(write(t / "s.jsonl", '{"conversations": [{"from": "human", "value": "甲"}, '
                                  '{"from": "gpt", "value": "乙"}]}\n' + row))]


def c_surrogate_openai(t: Path, o: Path) -> list[str]:
    row = '{"messages": [{"role": "user", "content": "\\ud83d"}, {"role": "assistant", "content": "答"}]}\n'
    return ["openai", str(write(t / "s.json", "[" + row.strip() + "]"))]


def c_surrogate_belle(t: Path, o: Path) -> list[str]:
    return ["belle", str(write(t / "b.json", '{"instruction": "x\\ud800", "input": "", "output": "y"}\n'))]


def c_deep_jsonl(t: Path, o: Path) -> list[str]:
    return ["alpaca", str(write(t / "d.jsonl", '{"instruction": "q", "output": ' + DEEP + "}\n"))]


def c_deep_array(t: Path, o: Path) -> list[str]:
    return ["alpaca", str(write(t / "d.json", '[{"instruction": "q", "output": ' + DEEP + "}]"))]


def c_deep_object(t: Path, o: Path) -> list[str]:
    return ["openai", str(write(t / "d.json", '{"messages": ' + DEEP + "}"))]


def c_deep_belle(t: Path, o: Path) -> list[str]:
    return ["belle", str(write(t / "b.json", '{"instruction": "q", "input": "", "output": ' + DEEP + "}\n"))]


def c_deep_sharegpt_objects(t: Path, o: Path) -> list[str]:
    return ["sharegpt", str(write(t / "d.jsonl", '{"a":' * 5000 + "1" + "}" * 5000 + "\n"))]


CASES: dict[str, Case] = {
    "lone_surrogate_alpaca": Case(c_surrogate_alpaca, 1, ("s.jsonl:1: lone surrogate \\ud800", " — fix the escape")),
    "lone_surrogate_sharegpt": Case(c_surrogate_sharegpt, 1, ("s.jsonl:2: lone surrogate \\udfff", " — ")),
    "lone_surrogate_openai_array": Case(c_surrogate_openai, 1, ("s.json:1: lone surrogate \\ud83d", " — ")),
    "lone_surrogate_belle": Case(c_surrogate_belle, 1, ("b.json:1: lone surrogate", " — ")),
    "deep_json_line": Case(c_deep_jsonl, 1, ("d.jsonl:1: JSON nested too deeply", " — flatten")),
    "deep_json_array": Case(c_deep_array, 1, ("d.json:1: JSON nested too deeply", " — flatten")),
    "deep_json_object": Case(c_deep_object, 1, ("d.json:1: JSON nested too deeply", " — flatten")),
    "deep_belle_row": Case(c_deep_belle, 1, ("b.json", "nested too deeply", " — flatten")),
    "deep_objects_line": Case(c_deep_sharegpt_objects, 1, ("d.jsonl:1: JSON nested too deeply", " — ")),
    "gbk_bytes": Case(lambda t, o: ["alpaca", str(write(t / "g.jsonl", '{"instruction": "密钥", "output": "是"}\n'
                                                        .encode("gbk")))], 1, ("g.jsonl:1:", "GBK", " — iconv")),
    "utf16_file": Case(lambda t, o: ["alpaca", str(write(t / "u.jsonl", json.dumps(GOOD).encode("utf-16")))], 1,
                       ("u.jsonl: file is UTF-16", " — iconv")),
    "png_named_json": Case(lambda t, o: ["alpaca", str(write(t / "p.json", b"\x89PNG\r\n\x1a\n" + b"\0" * 40))], 1,
                           ("p.json: binary file (a PNG image)", " — ")),
    "nul_bytes": Case(lambda t, o: ["alpaca", str(write(t / "n.jsonl", b'{"a": 1}\n\0\0\0'))], 1,
                      ("n.jsonl: binary file (NUL bytes)", " — ")),
    "empty_file": Case(lambda t, o: ["alpaca", str(write(t / "e.jsonl", b""))], 1, ("e.jsonl: file is empty", " — ")),
    "whitespace_file": Case(lambda t, o: ["openai", str(write(t / "w.json", "\n \t\n"))], 1,
                            ("w.json: file holds only whitespace", " — ")),
    "truncated_array": Case(lambda t, o: ["alpaca", str(write(t / "x.json", '[{"instruction": "q", "output": "a"},\n'
                                                              ' {"instruction": "r", "out'))], 1,
                            ("x.json:2:", "invalid JSON", " — fix the JSON syntax")),
    "array_in_jsonl": Case(lambda t, o: ["alpaca", str(write(t / "x.jsonl", "[\n" + json.dumps(GOOD) + "\n]\n"))], 1,
                           ("x.jsonl:1: a JSON array in a .jsonl file", " — rename")),
    "row_is_string": Case(lambda t, o: ["alpaca", str(jsonl(t / "x.jsonl", GOOD, "just text"))], 1,
                          ("x.jsonl:2: row is a string", " — ")),
    "wrapped_records": Case(lambda t, o: ["alpaca", str(write(t / "x.json", json.dumps({"data": [GOOD, GOOD]})))], 1,
                            ("x.json: records are wrapped", " — make the file a top-level array")),
    "missing_input": Case(lambda t, o: ["alpaca", str(t / "nope.jsonl")], 1, ("nope.jsonl: no such file", " — ")),
    "folder_without_json": Case(lambda t, o: ["alpaca", str(write(t / "d" / "a.txt", "x").parent)], 1,
                                ("d: folder holds no .json, .jsonl file", " — ")),
    "char_device_input": Case(lambda t, o: ["alpaca", "/dev/null"], 1,
                              ("/dev/null: is a character device, not a regular file", " — pass a regular file")),
    "fifo_input": Case(lambda t, o: (os.mkfifo(t / "p.jsonl"), ["alpaca", str(t / "p.jsonl")])[1], 1,
                       ("p.jsonl: is a FIFO (named pipe), not a regular file; it was not opened", " — "),
                       subprocess=True),
    "markdown_gbk": Case(lambda t, o: ["markdown", str(write(t / "n" / "a.md", NOTE.encode("gbk")))], 1,
                         ("a.md:1:3:", "looks GBK-encoded", " — iconv")),
    "markdown_only_question": Case(lambda t, o: ["markdown", str(write(t / "n" / "a.md", "# T\n\n问：什么是 AES？\n")),
                                                 "--strict"], 1, ("a.md:3", "no answer", " — ")),
    "markdown_500_nested_thinking": Case(
        lambda t, o: ["markdown", str(write(t / "n" / "a.md", "# T\n\n问：甲？\n答：" + "<thinking>" * 500 + "x"
                                            + "</thinking>" * 500 + "乙\n"))], 1, ("a.md:4", " — ")),
}


# ---------------------------------------------------------------- cases on the output folder and options


def info(o: Path, text: str | bytes) -> None:
    (o / "dataset_info.json").write_bytes(text.encode() if isinstance(text, str) else text)


def good(t: Path) -> str:
    return str(jsonl(t / "good.jsonl", GOOD))


def c_info_malformed(t: Path, o: Path) -> list[str]:
    info(o, '{"mine": {"file_name": "mine.json"},\n  oops}\n')
    return ["alpaca", good(t)]


def c_info_list(t: Path, o: Path) -> list[str]:
    info(o, "[1, 2]")
    return ["alpaca", good(t)]


def c_info_not_utf8(t: Path, o: Path) -> list[str]:
    info(o, '{"说明": {"file_name": "a.json"}}'.encode("gbk"))
    return ["alpaca", good(t)]


def c_info_deep(t: Path, o: Path) -> list[str]:
    info(o, '{"x": ' + DEEP + "}")
    return ["alpaca", good(t)]


def c_info_is_folder(t: Path, o: Path) -> list[str]:
    (o / "dataset_info.json").unlink()
    (o / "dataset_info.json").mkdir()
    return ["alpaca", good(t)]


def c_info_broken_link(t: Path, o: Path) -> list[str]:
    (o / "dataset_info.json").unlink()
    (o / "dataset_info.json").symlink_to(t / "gone.json")
    return ["alpaca", good(t)]


def c_entry_conflict(t: Path, o: Path) -> list[str]:
    info(o, json.dumps({**USER, "g_train": {"file_name": "other.json"}}))
    return ["alpaca", good(t), "--split", "100/0/0"]


def side_file(suffix: str) -> Callable[[Path, Path], list[str]]:
    def setup(t: Path, o: Path) -> list[str]:
        (o / f"g.{suffix}").write_text("我自己写的文件\n", encoding="utf-8")
        return ["alpaca", good(t), "--split", "100/0/0"]
    return setup


def c_data_file_of_user(t: Path, o: Path) -> list[str]:
    (o / "g_train.jsonl").write_text("mine\n", encoding="utf-8")
    return ["alpaca", good(t), "--split", "100/0/0"]


def c_folder_in_the_way(t: Path, o: Path) -> list[str]:
    (o / "g_train.jsonl").mkdir()
    return ["alpaca", good(t), "--split", "100/0/0"]


def c_out_is_file(t: Path, o: Path) -> list[str]:
    return ["alpaca", good(t), "--out", str(o / "mine.json")]


def c_out_is_input(t: Path, o: Path) -> list[str]:
    write(o / "note.md", NOTE)
    return ["markdown", str(o)]


OPTION_CASES: dict[str, Case] = {
    "info_malformed": Case(c_info_malformed, 1, ("dataset_info.json:2: malformed JSON", " — fix or move the file")),
    "info_is_a_list": Case(c_info_list, 1, ("dataset_info.json:1: top level is a list", " — fix or move")),
    "info_not_utf8": Case(c_info_not_utf8, 1, ("dataset_info.json: not UTF-8", " — save it as UTF-8")),
    "info_nested_deep": Case(c_info_deep, 1, ("dataset_info.json: malformed JSON (nested too deeply)", " — ")),
    "info_is_a_folder": Case(c_info_is_folder, 1, ("dataset_info.json: is not a regular file", " — move it away")),
    "info_broken_symlink": Case(c_info_broken_link, 1, ("dataset_info.json: is a broken symlink", " — fix or remove")),
    "entry_conflict": Case(c_entry_conflict, 2, ("entry 'g_train' already exists", " — choose another --name")),
    "users_report_md": Case(side_file("report.md"), 2, ("g.report.md: exists with different content", "--overwrite")),
    "users_manifest": Case(side_file("manifest.json"), 2, ("g.manifest.json: exists with different content",
                                                            "--overwrite")),
    "users_drops": Case(side_file("drops.jsonl"), 2, ("g.drops.jsonl: exists with different content",)),
    "users_provenance": Case(side_file("provenance.jsonl"), 2, ("g.provenance.jsonl: exists with different",)),
    "users_data_file": Case(c_data_file_of_user, 2, ("g_train.jsonl: exists with different content", "--overwrite")),
    "folder_where_file_goes": Case(c_folder_in_the_way, 1, ("g_train.jsonl: is a folder where a data file must go",
                                                            " — move it away")),
    "out_is_a_file": Case(c_out_is_file, 2, ("--out", "mine.json: exists and is not a folder", " — pass a folder")),
    "out_with_newline": Case(lambda t, o: ["alpaca", good(t), "--out", str(o) + "\nx"], 2,
                             ("--out", "control character", " — choose")),
    "out_is_the_input": Case(c_out_is_input, 1, ("out: is the output folder (--out), never read as input",
                                                  " — pass the folder of your notes")),
    "name_with_newline": Case(lambda t, o: ["alpaca", good(t), "--name", "g\nresume: x"], 2, ("--name", "use letters")),
    "name_climbs_out": Case(lambda t, o: ["alpaca", good(t), "--name", "../g"], 2, ("--name '../g'", "no '..'")),
    "name_with_slash": Case(lambda t, o: ["alpaca", good(t), "--name", "a/b"], 2, ("--name 'a/b'", "no '/'")),
    "name_hidden": Case(lambda t, o: ["alpaca", good(t), "--name", ".lfx-x"], 2, ("--name '.lfx-x'",)),
    "bad_split": Case(lambda t, o: ["alpaca", good(t), "--split", "70/30"], 2, ("--split '70/30'", "like 70/15/15")),
    "negative_split": Case(lambda t, o: ["alpaca", good(t), "--split=-1/50/51"], 2, ("--split", "non-negative")),
    "belle_sample_zero": Case(lambda t, o: ["belle", good(t), "--sample", "0"], 2, ("--sample 0: must be at least 1", " — pass how many")),
    "unknown_model": Case(lambda t, o: ["alpaca", good(t), "--model", "qwen9"], 2, ("Unknown", "qwen9")),
}


def run_case(case: Case, tmp_path: Path) -> tuple[int, str, Path, str]:
    t = tmp_path / "in"
    t.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps(USER), encoding="utf-8")
    (out / "mine.json").write_text("[]", encoding="utf-8")
    argv = case.setup(t, out)
    argv = argv + [a for a in ("--name", "g") if "--name" not in argv] + (["--out", str(out)] if "--out" not in argv
                                                                           else [])
    before = folder_hash(out)
    code, text = call_subprocess(argv, tmp_path) if case.subprocess else call(argv)
    return code, text, out, before


@pytest.mark.parametrize("name", sorted(CASES) + sorted(OPTION_CASES))
def test_hostile_case_is_located_with_a_fix_and_changes_nothing(name, tmp_path):
    case = CASES.get(name) or OPTION_CASES[name]
    code, text, out, before = run_case(case, tmp_path)
    assert "Traceback" not in text, text
    assert code == case.code, text
    for part in case.parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert " — " in text or "\n  " in text  # the fix follows the dash
    assert folder_hash(out) == before
    assert not leftovers(out, tmp_path / "in")


def test_case_count():
    assert len(CASES) + len(OPTION_CASES) >= 40


# ---------------------------------------------------------------- cases that end in correct output


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps(USER), encoding="utf-8")
    (folder / "mine.json").write_text("[]", encoding="utf-8")
    return folder


def test_fifo_and_socket_in_notes_folder_are_skipped_unopened(tmp_path, out):
    notes = tmp_path / "notes"
    write(notes / "a.md", NOTE)
    os.mkfifo(notes / "p.md")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(notes / "s.md"))
    try:
        code, text = call_subprocess(["markdown", str(notes), "--name", "n", "--out", str(out), "--split", "100/0/0"],
                                     tmp_path)
    finally:
        sock.close()
    assert code == 0 and "Traceback" not in text, text
    assert f"skipped {notes / 'p.md'}: a FIFO (named pipe), never opened — only regular files are read" in text
    assert f"skipped {notes / 's.md'}: a socket, never opened" in text
    drops = [json.loads(x) for x in (out / "n.drops.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(Path(d["file"]).name, d["reason"]) for d in drops} >= {("p.md", "not_regular_file"),
                                                                    ("s.md", "not_regular_file")}


def test_broken_link_in_notes_folder_is_named(tmp_path, out):
    notes = tmp_path / "notes"
    write(notes / "a.md", NOTE)
    (notes / "gone.md").symlink_to(tmp_path / "nowhere.md")
    code, text = call(["markdown", str(notes), "--name", "n", "--out", str(out), "--split", "100/0/0"])
    assert code == 0, text
    assert f"skipped {notes / 'gone.md'}: No such file or directory (a broken link?)" in text


def test_out_inside_the_notes_folder_is_never_read_back(tmp_path):
    notes = tmp_path / "notes"
    write(notes / "a.md", NOTE)
    write(notes / "b.md", "# 哈希\n\n问：什么是 SHA-256？\n答：一种输出 256 位摘要的哈希函数。\n")
    out = notes / "dataset_info"
    first = call(["markdown", str(notes), "--name", "n", "--out", str(out), "--split", "100/0/0"])
    write(out / "extra.md", NOTE.replace("AES", "DES"))  # even markdown placed in the output folder
    second = call(["markdown", str(notes), "--name", "n", "--out", str(out), "--split", "100/0/0"])
    assert first[0] == 0 and second[0] == 0, second[1]
    assert "train 2" in first[1] and "train 2" in second[1]
    assert "the output folder (--out), never read as input" in second[1]


def test_symlinked_dataset_info_is_updated_through_the_link(tmp_path, out):
    shared = tmp_path / "shared" / "dataset_info.json"
    write(shared, json.dumps({"team": {"file_name": "team.json"}}))
    (out / "dataset_info.json").unlink()
    (out / "dataset_info.json").symlink_to(shared)
    code, text = call(["alpaca", good(tmp_path), "--name", "g", "--out", str(out), "--split", "100/0/0"])
    assert code == 0, text
    assert (out / "dataset_info.json").is_symlink() and os.readlink(out / "dataset_info.json") == str(shared)
    assert list(json.loads(shared.read_text())) == ["team", "g_train"]
    assert not leftovers(out, shared.parent)


def prior_build(tmp_path: Path, out: Path) -> None:
    rows = [{"instruction": f"问题{i}：什么是密钥{i}？", "input": "", "output": f"密钥{i}是秘密参数。"} for i in range(20)]
    assert call(["alpaca", str(jsonl(tmp_path / "old.jsonl", *rows)), "--name", "x", "--out", str(out)])[0] == 0


def test_overwrite_never_deletes_a_file_outside_the_folder(tmp_path, out):
    prior_build(tmp_path, out)
    victim = write(tmp_path / "victim.txt", "用户的重要文件\n")
    entries = json.loads((out / "dataset_info.json").read_text())
    entries["x_test"] = {"file_name": "../victim.txt"}
    (out / "dataset_info.json").write_text(json.dumps(entries))
    code, text = call(["alpaca", good(tmp_path), "--name", "x", "--out", str(out), "--overwrite", "--split", "100/0/0"])
    assert code == 0, text
    assert victim.read_text(encoding="utf-8") == "用户的重要文件\n"
    assert "kept" in text and "victim.txt" in text
    assert not (out / "x_val.jsonl").exists()  # the tool's own stale file did go


def test_overwrite_keeps_a_file_another_entry_uses(tmp_path, out):
    prior_build(tmp_path, out)
    entries = json.loads((out / "dataset_info.json").read_text())
    entries["friend"] = {"file_name": "x_val.jsonl"}
    (out / "dataset_info.json").write_text(json.dumps(entries))
    kept = (out / "x_val.jsonl").read_bytes()
    code, text = call(["alpaca", good(tmp_path), "--name", "x", "--out", str(out), "--overwrite", "--split", "100/0/0"])
    assert code == 0, text
    assert (out / "x_val.jsonl").read_bytes() == kept
    assert "friend" in json.loads((out / "dataset_info.json").read_text())


def test_overwrite_keeps_a_user_file_not_in_the_manifest(tmp_path, out):
    entries = {**USER, "x_val": {"file_name": "my_val.jsonl"}}
    (out / "dataset_info.json").write_text(json.dumps(entries))
    write(out / "my_val.jsonl", "我的验证集\n")
    code, text = call(["alpaca", good(tmp_path), "--name", "x", "--out", str(out), "--overwrite", "--split", "100/0/0"])
    assert code == 0, text
    assert (out / "my_val.jsonl").read_text(encoding="utf-8") == "我的验证集\n"


def test_rerun_replaces_the_tools_own_side_files_without_overwrite(tmp_path, out):
    src = good(tmp_path)
    assert call(["alpaca", src, "--name", "g", "--out", str(out)])[0] == 0
    code, text = call(["alpaca", src, "--name", "g", "--out", str(out), "--quiet"])  # the manifest differs
    assert code == 0, text
    assert json.loads((out / "g.manifest.json").read_text())["arguments"]["quiet"] is True


def test_non_utf8_file_name_in_notes_folder(tmp_path, out):
    notes = tmp_path / "notes"
    notes.mkdir()
    with open(os.fsencode(notes) + b"/\xb2\xe2.md", "wb") as fh:  # GBK bytes for a name, as old zips leave
        fh.write(NOTE.encode("utf-8"))
    code, text = call_subprocess(["markdown", str(notes), "--name", "n", "--out", str(out), "--split", "100/0/0"],
                                 tmp_path)
    assert code == 0 and "Traceback" not in text, text
    assert json.loads((out / "n.provenance.jsonl").read_text(encoding="utf-8").splitlines()[0])["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_named(tmp_path, out):
    path = jsonl(tmp_path / "locked.jsonl", GOOD)
    path.chmod(0)
    before = folder_hash(out)
    code, text = call(["alpaca", str(path), "--name", "g", "--out", str(out)])
    assert code == 1 and "locked.jsonl: cannot be read (Permission denied)" in text
    assert folder_hash(out) == before


def test_internal_error_prints_one_line_naming_a_log(tmp_path, out, monkeypatch):
    from llamafactory_ext.data import pipeline

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(pipeline, "build", broken)
    code, text = call(["alpaca", good(tmp_path), "--name", "g", "--out", str(out)])
    assert code == 70 and "Traceback" not in text
    (line,) = text.strip().splitlines()
    log = line.split("the traceback is in ")[1].split(";")[0]
    assert "ZeroDivisionError: boom" in Path(log).read_text() and "--debug" in line
    Path(log).unlink()
    with pytest.raises(ZeroDivisionError):
        main(["alpaca", good(tmp_path), "--name", "g", "--out", str(out), "--debug"])
