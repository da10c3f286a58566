"""The file readers: every bad input gives a located DataError with its fix; good input reads exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.sources.files import find_files, iter_json_records, read_text
from llamafactory_ext.errors import DataError


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def records(path: Path) -> list:
    return list(iter_json_records(path))


def only_error(items: list) -> DataError:
    errors = [i for i in items if isinstance(i, DataError)]
    assert len(errors) == 1, items
    return errors[0]


# ---------------------------------------------------------------- read_text


def test_missing_path_names_file_and_fix(tmp_path):
    with pytest.raises(DataError) as e:
        read_text(tmp_path / "nope.md")
    assert e.value.path.endswith("nope.md") and "no such file" in e.value.reason and e.value.fix


def test_directory_where_a_file_was_expected(tmp_path):
    with pytest.raises(DataError, match="is a directory, expected a file"):
        read_text(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n  "], ids=["zero-bytes", "whitespace"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path / "empty.md", content)
    with pytest.raises(DataError, match="empty|only whitespace") as e:
        read_text(path)
    assert "empty.md" in str(e.value) and e.value.fix


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"abc\x00def", "NUL bytes"),
        (b"PK\x03\x04rest-of-zip", "ZIP"),
        (b"\x89PNG\r\n\x1a\n....", "PNG"),
        (b"%PDF-1.7\n...", "PDF"),
    ],
)
def test_binary_file(tmp_path, content, what):
    path = write(tmp_path / "notes.md", content)
    with pytest.raises(DataError, match="binary file") as e:
        read_text(path)
    assert what in e.value.reason and "notes.md" in str(e.value)


def test_utf16_file_says_utf16_and_gives_iconv(tmp_path):
    path = write(tmp_path / "u16.md", "你好\n".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16") as e:
        read_text(path)
    assert "iconv -f UTF-16 -t UTF-8" in e.value.fix


def test_gbk_file_reports_line_col_and_iconv_fix(tmp_path):
    path = write(tmp_path / "gbk.md", b"first line\n" + "ab你好\n".encode("gbk"))
    with pytest.raises(DataError) as e:
        read_text(path)
    err = e.value
    assert (err.line, err.col) == (2, 3)
    assert "looks GBK-encoded" in err.reason
    assert err.fix.startswith("iconv -f GBK -t UTF-8") and "gbk.md" in err.fix
    assert str(err).startswith(f"{path}:2:3: not valid UTF-8")


def test_non_utf8_that_is_not_gbk_asks_for_utf8(tmp_path):
    path = write(tmp_path / "bad.md", "好的\n".encode() + b"ok \x80\n")
    with pytest.raises(DataError) as e:
        read_text(path)
    assert (e.value.line, e.value.col) == (2, 4) and "GBK" not in e.value.reason and "UTF-8" in e.value.fix


def test_bom_is_dropped_silently(tmp_path):
    path = write(tmp_path / "bom.md", b"\xef\xbb\xbf# \xe6\xa0\x87\xe9\xa2\x98\n")
    assert read_text(path) == "# 标题\n"


def test_crlf_and_cr_become_lf(tmp_path):
    path = write(tmp_path / "win.md", b"a\r\nb\rc\n")
    assert read_text(path) == "a\nb\nc\n"


# ---------------------------------------------------------------- find_files


def test_find_files_keeps_direct_files_and_searches_folders_sorted(tmp_path):
    direct = write(tmp_path / "x.txt", "x")
    for name in ["b/2.md", "a/1.MD", "a/skip.txt", ".git/hidden.md", "a/.cache/h.md", "c.markdown"]:
        write(tmp_path / "docs" / name, "text")
    found = find_files([direct, tmp_path / "docs"], (".md", ".markdown"))
    docs = tmp_path / "docs"
    assert found == [direct, docs / "a/1.MD", docs / "b/2.md", docs / "c.markdown"]


def test_find_files_deduplicates(tmp_path):
    one = write(tmp_path / "d/1.md", "x")
    assert find_files([one, tmp_path / "d"], (".md",)) == [one]


def test_folder_without_matching_files_names_folder_and_suffixes(tmp_path):
    write(tmp_path / "d/readme.txt", "x")
    with pytest.raises(DataError) as e:
        find_files([tmp_path / "d"], (".md", ".markdown"))
    assert e.value.path == str(tmp_path / "d") and ".md, .markdown" in e.value.reason and e.value.fix


def test_find_files_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        find_files([tmp_path / "gone"], (".md",))


# ---------------------------------------------------------------- iter_json_records


def test_jsonl_rows_with_line_numbers_and_blank_lines(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"q": "一"}\n\n  \n{"q": "二"}\r\n')
    assert records(path) == [(1, {"q": "一"}), (4, {"q": "二"})]


def test_invalid_json_line_is_yielded_with_line_col_and_reading_goes_on(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"q": 1}\n{"q": 2,}\n{"q": 3}\n')
    items = records(path)
    err = only_error(items)
    assert (err.path, err.line, err.col) == (str(path), 2, 9)
    assert "invalid JSON: Expecting property name" in err.reason and "one complete JSON object" in err.fix
    assert items[0] == (1, {"q": 1}) and items[2] == (3, {"q": 3})


@pytest.mark.parametrize("content", ['[{"q": 1}, {"q": 2}]', '\n[\n  {"q": 1},\n  {"q": 2}\n]\n'])
def test_json_array_in_jsonl_is_refused_with_fix(tmp_path, content):
    path = write(tmp_path / "data.jsonl", content)
    with pytest.raises(DataError, match="JSON array in a .jsonl file") as e:
        records(path)
    assert "data.jsonl" in str(e.value) and "rename the file to .json" in e.value.fix


def test_json_array_elements_have_their_starting_line(tmp_path):
    content = """[
  {"q": "一"},
  {
    "q": "多\\n行",
    "a": ["x", {"y": 1}]
  },

  {"q": "三"}, "四"
]
"""
    items = records(write(tmp_path / "data.json", content))
    assert items[:3] == [(2, {"q": "一"}), (3, {"q": "多\n行", "a": ["x", {"y": 1}]}), (8, {"q": "三"})]
    assert only_error(items).line == 8  # the bare string after row 3 starts on the same line


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abc"), st.text(max_size=8) | st.integers()), max_size=6),
       st.sampled_from([None, 1, 4]))
def test_array_line_numbers_match_an_independent_layout(rows, indent):
    import tempfile

    parts = [json.dumps(r, ensure_ascii=False, indent=indent) for r in rows]
    starts, line = [], 2  # the file opens with "[\n"
    for part in parts:
        starts.append(line)
        line += part.count("\n") + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "p.json", "[\n" + ",\n".join(parts) + "\n]\n")
        assert records(path) == list(zip(starts, rows, strict=True))


def test_json_lines_under_a_json_suffix_are_read_as_lines(tmp_path):
    path = write(tmp_path / "belle.json", '{"q": 1}\n{"q": 2}\n')
    assert records(path) == [(1, {"q": 1}), (2, {"q": 2})]


def test_whole_file_syntax_error_in_json_gives_line_col(tmp_path):
    path = write(tmp_path / "data.json", '[\n  {"q": 1},\n  {"q" 2}\n]\n')
    with pytest.raises(DataError) as e:
        records(path)
    assert (e.value.line, e.value.col) == (3, 8) and "invalid JSON" in e.value.reason


def test_trailing_comma_in_array_is_an_error(tmp_path):
    path = write(tmp_path / "data.json", '[{"q": 1},\n]')
    with pytest.raises(DataError, match="invalid JSON") as e:
        records(path)
    assert e.value.line == 2


def test_records_wrapped_under_a_key_are_not_guessed(tmp_path):
    path = write(tmp_path / "data.json", '{"version": 1, "data": [{"q": 1}, {"q": 2}]}')
    with pytest.raises(DataError, match="under key 'data'") as e:
        records(path)
    assert "jq '.data'" in e.value.fix


def test_a_single_sharegpt_record_is_not_mistaken_for_a_wrapper(tmp_path):
    row = {"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}]}
    path = write(tmp_path / "one.json", json.dumps(row, ensure_ascii=False, indent=2))
    assert records(path) == [(1, row)]


def test_concatenated_pretty_objects_are_refused(tmp_path):
    path = write(tmp_path / "data.json", '{\n "q": 1\n}\n{\n "q": 2\n}\n')
    with pytest.raises(DataError, match="several JSON values") as e:
        records(path)
    assert e.value.line == 4 and "one object per line" in e.value.fix


@pytest.mark.parametrize(("suffix", "content", "line"), [(".jsonl", '{"q": 1}\n"just text"\n', 2),
                                                          (".json", '[{"q": 1},\n "just text"]', 2)])
def test_non_object_row_is_yielded_as_error(tmp_path, suffix, content, line):
    path = write(tmp_path / f"data{suffix}", content)
    err = only_error(list(iter_json_records(path, keys=("instruction", "output"))))
    assert err.line == line and err.reason == "row is a string, expected an object with keys instruction, output"
