"""normalize() on real material: code and formulas written into prose stay byte-identical, prose is still fixed.

Real texts: LLaMA-Factory's alpaca_zh_demo.json (plus its tool-call and multimodal demos) and the public notes under tests/fixtures/real/ (SOURCES
files there). The detector of "code-like" is normalize/codelike.py; check.py counts with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.normalize import normalize
from llamafactory_ext.data.normalize.check import changed, code_spans, main, texts
from llamafactory_ext.data.normalize.codelike import spans

REAL = Path(__file__).resolve().parent / "fixtures" / "real"
ALPACA = REAL / "llamafactory" / "alpaca_zh_demo.json"
NOTES = REAL / "notes"


@pytest.fixture(scope="module")
def real_texts() -> list[tuple[str, str]]:
    lf_others = [REAL / "llamafactory" / f for f in ("glaive_toolcall_zh_demo.json", "mllm_demo.json")]
    found = [*texts(ALPACA), *texts(NOTES), *(item for path in lf_others for item in texts(path))]
    assert len(found) > 3000 and sum(w.startswith(str(NOTES)) for w, _ in found) >= 30
    return found


# --- the real corpora ------------------------------------------------------------------------------


def test_every_code_span_of_the_real_corpora_comes_out_byte_identical(real_texts):
    kinds: dict[str, int] = {}
    for _, text in real_texts:
        for kind, _span in code_spans(text):
            kinds[kind] = kinds.get(kind, 0) + 1
    assert min(kinds.values()) >= 50, kinds  # every kind of the detector is exercised by real text
    damaged = [(where, span) for where, text in real_texts for span in changed(text, normalize)]
    assert damaged == []


def test_real_corpora_normalize_idempotently(real_texts):
    for where, text in real_texts:
        once = normalize(text)
        assert normalize(once) == once, where


def test_alpaca_row_595_python_survives():
    row = json.loads(ALPACA.read_text(encoding="utf-8"))[595]["output"]
    out = normalize(row)
    assert out.startswith("下面是一个基于给定指令的 Python 算法：\n")  # the prose colon is still converted
    for line in row.splitlines()[1:]:
        if line.strip():
            assert line in out.splitlines(), line
    assert "project_count = int(input('输入项目数量: '))" in out


def test_check_cli_passes_on_alpaca_and_fails_on_a_code_blind_normalizer(capsys):
    assert main([str(ALPACA)]) == 0
    code_blind = "llamafactory_ext.data.normalize.punct:punct_prose"  # the punctuation rules without codelike
    assert main([str(ALPACA), "--normalizer", code_blind, "--show", "99"]) == 1
    out = capsys.readouterr().out
    assert "alpaca_zh_demo.json[595]: code line changed" in out


def test_check_cli_help_and_bad_inputs(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "byte-identical" in capsys.readouterr().out
    bad = tmp_path / "rows.json"
    bad.write_text('[{"instruction": "x",}]', encoding="utf-8")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: not valid JSON" in err and "JSON array" in err
    assert main([str(tmp_path / "absent.md")]) == 1
    assert "cannot read" in capsys.readouterr().err


# --- each kind of span -------------------------------------------------------------------------------

KEPT = [
    # (text, what must survive byte-identical, what the prose around it becomes)
    ("输入代码int(input('输入项目数量: ')),然后回车", "int(input('输入项目数量: '))", "，然后回车"),
    ("函数f(x)的值,即结果", "f(x)", "的值，即结果"),
    ("计算x^(n/2)的值,再取模", "x^(n/2)", "的值，再取模"),
    ("用count(列名)统计行数,很常用", "count(列名)", "统计行数，很常用"),
    ("示例:\nSELECT 姓名, COUNT(列名) FROM 表;", "SELECT 姓名, COUNT(列名) FROM 表;", "示例："),
    ("5!的值是120,对吗?", "5!", "的值是120，对吗？"),
    ("n!种排列,(n-1)!种环排列", "(n-1)!", "种环排列"),
    ("公钥为(p,q,g,y),私钥为x", "(p,q,g,y)", "，私钥为x"),
    ("输出[('热气球', '对象'), ('一种', '数量')]即可", "('热气球', '对象'), ('一种', '数量')", "即可"),
    ("设置name='张三',即可", "name='张三'", "，即可"),
    ("已知$a,b \\in (0,1)$,求证:", "$a,b \\in (0,1)$", "，求证："),
    ("有\\(x,y\\),则", "\\(x,y\\)", "，则"),
    ("如下:\n$$\nc_1,c_2 = (中, 文)\n$$\n证毕.", "$$\nc_1,c_2 = (中, 文)\n$$", "证毕。"),
    ("说明:\nresult = compute('数据,结果')\n结束.", "result = compute('数据,结果')", "结束。"),
    ("说明:\nfor i in range(10):  # 循环,计数\n结束.", "for i in range(10):  # 循环,计数", "说明："),
    ("[^1]: 脚注内容,说明.", "[^1]:", "脚注内容，说明。"),
    ("见[文档](说明.md),好", "(说明.md)", "，好"),
]


@pytest.mark.parametrize(("text", "kept", "prose"), KEPT)
def test_code_like_span_is_byte_identical_and_prose_is_converted(text, kept, prose):
    out = normalize(text)
    assert kept in out
    assert prose in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("密码学(cryptography)是一门学科", "密码学（cryptography）是一门学科"),  # an English gloss
        ("第(1)步,读取", "第（1）步，读取"),  # numbering
        ("他说:'你好,世界'.", "他说：'你好，世界'."),  # a quote in prose is prose
        ("使用 AES (高级加密标准) 加密", "使用 AES（高级加密标准）加密"),
        ("见(dài lái)读音", "见（dài lái）读音"),  # a gloss in any Latin script
        ("[a](https://x.org/a.py)(分解原理如上)", "[a](https://x.org/a.py)（分解原理如上）"),
        ("价格$5 和 $10,很便宜", "价格$5 和 $10，很便宜"),  # dollar amounts are no formula
    ],
)
def test_chinese_prose_punctuation_is_still_converted(text, expected):
    assert normalize(text) == expected


def test_emoji_joiners_stay_and_stray_invisibles_go():
    family = "👨\u200d👩\u200d👧"
    assert normalize(f"全家{family}出游,开心") == f"全家{family}出游，开心"
    assert normalize("技术\u200d人员\u200b,好") == "技术人员，好"


def test_control_characters_inside_code_blocks_stay_and_go_elsewhere():
    block = "```\n\x1b[31m红色\x1b[0m\x0c\x07,  \n\x85µp^Ûé\n```"
    assert normalize(f"输出:\x07\n{block}\n完.") == f"输出：\n{block}\n完。"
    assert normalize(f"\u200b{block}") == block  # still: an invisible char cannot hide a fence
    assert normalize("~~~\n\x00\n~~~\n\x00外") == "~~~\n\x00\n~~~\n外"


def test_spans_are_sorted_disjoint_and_inside_the_text():
    text = "令f(x)=x^(n/2),则(p,q)和5!与$a$,$$b$$"
    found = spans(text)
    assert [text[a:b] for a, b in found] == ["f(x)=x^(n/2)", "(p,q)", "5!", "$a$", "$$b$$"]


_PROSE = st.text(st.sampled_from(list("中文密钥的是，。,.:;?! \n")), max_size=12)
_CODE = st.sampled_from(
    ["f(x)", "int(input('输入: '))", "count(列名)", "x^(n/2)", "(p,q,g,y)", "5!", "$a,b:c$", "name='张三'"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_PROSE, _CODE), min_size=1, max_size=5), _PROSE)
def test_code_survives_any_chinese_prose_around_it(pieces, tail):
    text = "".join(p + c for p, c in pieces) + tail
    out = normalize(text)
    for _, code in pieces:
        assert code in out
    assert normalize(out) == out
