"""Structured rows without silent loss (issue 7, deliverable 5): tool calls, media, unused keys, wrong-kind files,
Belle's nested fields — on LLaMA-Factory's own demo data and on small hand-made rows."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from llamafactory_ext.data.converters.alpaca import convert_alpaca
from llamafactory_ext.data.converters.chat import OPENAI, SHAREGPT, convert_chat
from llamafactory_ext.data.formats import format_split
from llamafactory_ext.data.sources.belle import sample_records
from llamafactory_ext.data.sources.files import iter_json_records
from llamafactory_ext.errors import DataError, UsageError
from llamafactory_ext.records import Note, Sample

LF_DATA = Path(__file__).parent / "fixtures" / "real" / "llamafactory"
GLAIVE, MLLM, ALPACA = LF_DATA / "glaive_toolcall_zh_demo.json", LF_DATA / "mllm_demo.json", LF_DATA / "alpaca_zh_demo.json"
SHAREGPT_ROLE = {"human": "user", "gpt": "assistant", "function_call": "function_call", "observation": "observation"}


def by_type(items) -> dict[type, list]:
    out: dict[type, list] = {Sample: [], DataError: [], Note: []}
    for item in items:
        out[type(item)].append(item)
    return out


def rows_file(path: Path, rows: list, jsonl: bool = True) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) if jsonl else json.dumps(rows, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return path


def chat(path: Path, dialect=OPENAI, **kw) -> dict[type, list]:
    return by_type(convert_chat(iter_json_records(path), str(path), dialect, **kw))


# --- tool calls -----------------------------------------------------------------------------------------------

def test_glaive_every_row_converted_with_its_tools_and_tool_turns():
    source = json.loads(GLAIVE.read_text(encoding="utf-8"))
    out = chat(GLAIVE, SHAREGPT)
    assert out[DataError] == [] and len(out[Sample]) == len(source)
    for sample, row in zip(out[Sample], source, strict=True):
        assert sample.tools == row["tools"]  # byte-identical
        assert [t.role for t in sample.turns] == [SHAREGPT_ROLE[m["from"]] for m in row["conversations"]]
        calls = [m["value"].strip() for m in row["conversations"] if m["from"] == "function_call"]
        assert [t.content for t in sample.turns if t.role == "function_call"] == calls
    assert sum(s.kind == "tool_call" for s in out[Sample]) == sum(
        any(m["from"] == "function_call" for m in r["conversations"]) for r in source)


WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "description": "查天气",
                                                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def openai_tool_row(**changes) -> dict:
    row = {"messages": [
        {"role": "user", "content": "北京和上海天气如何？"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"北京\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"上海\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"},
        {"role": "tool", "tool_call_id": "c2", "content": "{\"temp\": 9}"},
        {"role": "assistant", "content": "北京 3 度，上海 9 度。"}], "tools": [WEATHER_TOOL]}
    row.update(changes)
    return row


def test_openai_tool_calls_and_tool_messages_map_to_function_call_and_observation(tmp_path):
    (sample,) = chat(rows_file(tmp_path / "t.jsonl", [openai_tool_row()]))[Sample]
    assert [t.role for t in sample.turns] == ["user", "function_call", "observation", "assistant"]
    calls = json.loads(sample.turns[1].content)
    assert calls == [{"name": "weather", "arguments": {"city": "北京"}}, {"name": "weather", "arguments": {"city": "上海"}}]
    assert "{\"temp\": 3}" in sample.turns[2].content and "{\"temp\": 9}" in sample.turns[2].content
    assert json.loads(sample.tools) == [WEATHER_TOOL] and sample.kind == "tool_call"


def test_legacy_openai_function_call_maps_the_same_way(tmp_path):
    row = {"messages": [{"role": "user", "content": "北京天气？"},
                        {"role": "assistant", "content": "", "function_call": {"name": "weather", "arguments": "{\"city\": \"北京\"}"}},
                        {"role": "function", "name": "weather", "content": "3 度"},
                        {"role": "assistant", "content": "3 度。"}]}
    (sample,) = chat(rows_file(tmp_path / "t.jsonl", [row]))[Sample]
    assert [t.role for t in sample.turns] == ["user", "function_call", "observation", "assistant"]
    assert json.loads(sample.turns[1].content) == {"name": "weather", "arguments": {"city": "北京"}}


@pytest.mark.parametrize(("change", "match"), [
    ({"tools": "[{\"name\": \"weather\""}, "'tools' is not valid JSON"),
    ({"tools": [{"description": "no name"}]}, "each with a 'name'"),
])
def test_bad_tools_are_located_errors(tmp_path, change, match):
    (err,) = chat(rows_file(tmp_path / "t.jsonl", [openai_tool_row(**change)]))[DataError]
    assert err.line == 1 and match in err.reason


def test_bad_calls_are_located_errors(tmp_path):
    bad_args = openai_tool_row()
    bad_args["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{city: 北京"
    text_and_call = openai_tool_row()
    text_and_call["messages"][1]["content"] = "我来查一下。"
    glaive_bad = {"conversations": [{"from": "human", "value": "查天气"}, {"from": "function_call", "value": "weather(北京)"},
                                    {"from": "observation", "value": "3"}, {"from": "gpt", "value": "3 度"}]}
    errors = chat(rows_file(tmp_path / "o.jsonl", [openai_tool_row(), bad_args, text_and_call]))[DataError]
    assert [(e.line, e.reason.split(" ")[2]) for e in errors] == [(2, "tool"), (3, "has")]
    assert "arguments that are not JSON" in errors[0].reason and "both text and tool_calls" in errors[1].reason
    (err,) = chat(rows_file(tmp_path / "s.jsonl", [glaive_bad]), SHAREGPT)[DataError]
    assert "function_call) is not JSON" in err.reason and err.line == 1


def test_tool_turn_in_the_wrong_place_is_named(tmp_path):
    row = {"conversations": [{"from": "human", "value": "q"}, {"from": "observation", "value": "{}"},
                             {"from": "gpt", "value": "a"}]}
    (err,) = chat(rows_file(tmp_path / "s.jsonl", [row]), SHAREGPT)[DataError]
    assert "message 2 is 'observation'" in err.reason and "an observation a user's" in err.reason


def test_tool_rows_write_the_tools_column_and_tool_tags(tmp_path):
    samples = chat(GLAIVE, SHAREGPT)[Sample]
    rows, entry = format_split(samples, "g.jsonl")
    assert entry["columns"] == {"messages": "messages", "tools": "tools"}
    assert entry["tags"]["function_tag"] == "function_call" and entry["tags"]["observation_tag"] == "observation"
    assert all(isinstance(r["tools"], str) for r in rows)  # one type on every row: the HF json loader needs it
    assert Counter(m["role"] for r in rows for m in r["messages"]) == Counter(t.role for s in samples for t in s.turns)
    with pytest.raises(UsageError, match="--format sharegpt"):
        format_split(samples, "g.jsonl", "alpaca")


def test_text_only_rows_keep_their_entry_unchanged():
    samples = by_type(convert_alpaca(iter_json_records(ALPACA), str(ALPACA)))[Sample][:5]
    rows, entry = format_split(samples, "a.jsonl")
    assert set(entry["columns"]) == {"messages"} and "function_tag" not in entry["tags"]
    assert all(set(r) == {"messages"} for r in rows)


# --- media ----------------------------------------------------------------------------------------------------

def test_mllm_demo_keeps_its_images_with_matching_placeholders():
    source = json.loads(MLLM.read_text(encoding="utf-8"))
    out = chat(MLLM)
    assert out[DataError] == [] and len(out[Sample]) == len(source)
    for sample, row in zip(out[Sample], source, strict=True):
        assert [Path(p) for p in sample.images] == [(MLLM.parent / p).resolve() for p in row["images"]]
        assert sum(t.content.count("<image>") for t in sample.turns) == len(sample.images)
        assert all(Path(p).is_file() for p in sample.images)


def test_media_paths_are_written_relative_to_the_output_folder(tmp_path):
    samples = chat(MLLM)[Sample]
    out = tmp_path / "deep" / "dataset_info"
    rows, entry = format_split(samples, "m.jsonl", out_dir=out)
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    for row, sample in zip(rows, samples, strict=True):
        assert all(not os.path.isabs(p) for p in row["images"])
        assert [os.path.realpath(out / p) for p in row["images"]] == list(sample.images)  # LF joins media_dir + path
    absolute, _ = format_split(samples, "m.jsonl")
    assert absolute[0]["images"] == list(samples[0].images)


def test_missing_media_file_is_a_located_error(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "<image>这是谁？"}, {"role": "assistant", "content": "不知道"}],
             "images": ["pics/none.jpg"]}]
    (err,) = chat(rows_file(tmp_path / "m.jsonl", rows))[DataError]
    assert err.line == 1 and "images item 1 'pics/none.jpg' not found" in err.reason and str(tmp_path) in err.reason
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "none.jpg").write_bytes((LF_DATA / "mllm_demo_data" / "1.jpg").read_bytes())
    assert len(chat(tmp_path / "m.jsonl")[Sample]) == 1
    assert len(chat(tmp_path / "m.jsonl", media_root=tmp_path / "elsewhere")[DataError]) == 1


def test_placeholder_count_must_match_the_media(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "这是谁？"}, {"role": "assistant", "content": "不知道"}],
             "images": [str((LF_DATA / "mllm_demo_data" / "1.jpg").resolve())]},
            {"instruction": "<image><image>比较", "output": "一样", "images": ["mllm_demo_data/1.jpg"]}]
    (err,) = chat(rows_file(tmp_path / "m.jsonl", rows[:1]))[DataError]
    assert "1 images but 0 <image> placeholder(s)" in err.reason
    src = rows_file(tmp_path / "a.jsonl", rows[1:])
    (err,) = by_type(convert_alpaca(iter_json_records(src), str(src), media_root=LF_DATA))[DataError]
    assert "1 images but 2 <image>" in err.reason


def test_text_only_target_refuses_media_rows_with_their_line():
    out = chat(MLLM, allow_media=False)
    assert out[Sample] == [] and len(out[DataError]) == len(json.loads(MLLM.read_text(encoding="utf-8")))
    assert all("target model is text-only" in e.reason and e.line > 0 for e in out[DataError])


def test_same_text_different_image_are_different_samples_wherever_the_data_lives():
    a = Sample((), images=("/x/pics/1.jpg",), source="/x/d.json")
    assert a.uid != a.with_(images=("/x/pics/2.jpg",)).uid and a.uid != a.with_(images=()).uid
    assert a.uid == Sample((), images=("/y/z/pics/1.jpg",), source="/y/z/d.json").uid  # split stays reproducible


# --- unused keys, wrong kinds, Belle ----------------------------------------------------------------------------

def test_unused_row_keys_are_notes_named_and_counted(tmp_path):
    rows = [{"instruction": "问", "output": "答", "id": 1, "source": "x"}, {"instruction": "问2", "output": "答2", "id": 2}]
    src = rows_file(tmp_path / "a.jsonl", rows)
    notes = by_type(convert_alpaca(iter_json_records(src), str(src)))[Note]
    assert Counter(n.code for n in notes) == {"unused_key:id": 2, "unused_key:source": 1}
    assert notes[0].line == 1 and "'id'" in notes[0].message
    out = chat(rows_file(tmp_path / "o.jsonl", [openai_tool_row(meta={"k": 1})]))
    assert [n.code for n in out[Note]] == ["unused_key:meta"] and len(out[Sample]) == 1


def test_glaive_and_mllm_have_no_unused_keys():
    assert chat(GLAIVE, SHAREGPT)[Note] == [] and chat(MLLM)[Note] == []


@pytest.mark.parametrize(("file", "dialect", "right"), [(MLLM, SHAREGPT, "openai"), (GLAIVE, OPENAI, "sharegpt")])
def test_a_chat_file_of_the_other_kind_is_one_error_naming_it(file, dialect, right):
    out = chat(file, dialect)
    (err,) = out[DataError]
    assert out[Sample] == [] and f"use `{right}`" in err.fix and err.line == 2


def test_an_alpaca_reader_given_chat_rows_names_the_kind(tmp_path):
    (err,) = by_type(convert_alpaca(iter_json_records(GLAIVE), str(GLAIVE)))[DataError]
    assert "rows have 'conversations'" in err.reason and "use `sharegpt`" in err.fix


def test_belle_given_a_json_array_or_chat_rows_gets_one_clear_error(tmp_path):
    array = rows_file(tmp_path / "arr.json", [{"instruction": "问", "input": "", "output": "答"}] * 3, jsonl=False)
    with pytest.raises(DataError, match="a JSON array") as e:
        sample_records(array, 2)
    assert "`alpaca`" in e.value.fix
    lines = rows_file(tmp_path / "chat.jsonl", [openai_tool_row()] * 3)
    with pytest.raises(DataError, match="rows have 'messages'") as e:
        sample_records(lines, 2)
    assert "use `openai`" in e.value.fix


NESTED = [{"instruction": {"instruction": "把下面的句子翻译成英文"}, "input": {"input": "你好"}, "output": {"text": "Hello"}},
          {"instruction": "解释 AES", "input": "", "output": {"output": "AES 是分组密码。"}},
          {"instruction": {"note": "no text"}, "input": "", "output": "答"}]


def test_belle_rows_with_nested_fields_are_repaired_exactly_like_alpaca(tmp_path):
    src = rows_file(tmp_path / "belle.json", NESTED)
    via_belle = list(convert_alpaca(sample_records(src, 10), str(src), kind="belle"))
    via_alpaca = list(convert_alpaca(iter_json_records(src), str(src)))
    assert [str(x) if isinstance(x, DataError) else x for x in via_belle] == \
           [str(x) if isinstance(x, DataError) else x for x in via_alpaca]
    samples = [x for x in via_belle if isinstance(x, Sample)]
    assert [s.turns[0].content for s in samples] == ["把下面的句子翻译成英文\n你好", "解释 AES"]
    assert [s.turns[1].content for s in samples] == ["Hello", "AES 是分组密码。"]
    (err,) = [x for x in via_belle if isinstance(x, DataError)]
    assert err.line == 3 and "'instruction' is an object without a text field" in err.reason
