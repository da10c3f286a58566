"""Chinese text normalization: unicode hygiene, OpenCC t2s, CJK punctuation — on prose only, idempotent."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.normalize import T2S_MODES, normalize, steps
from llamafactory_ext.data.normalize.chinese import _converter, chinese
from llamafactory_ext.data.normalize.punct import punct
from llamafactory_ext.data.normalize.segments import code_blocks, split
from llamafactory_ext.data.normalize.unicode import clean, unicode
from llamafactory_ext.errors import UsageError

# --- punctuation -------------------------------------------------------------------------------------

CONVERTED = [
    ("好,谢谢", "好，谢谢"),
    ("真的吗?", "真的吗？"),
    ("太好了!", "太好了！"),
    ("注意:密钥要保密;不要外泄", "注意：密钥要保密；不要外泄"),
    ("这是一个句子.", "这是一个句子。"),
    ("好吗?!", "好吗？！"),
    ("对称加密 , 例如AES", "对称加密，例如AES"),  # blanks around a converted mark go
    ("Python,它很流行", "Python，它很流行"),  # CJK on the right is enough for , ; : ? !
    ("密钥长度:256位", "密钥长度：256位"),
    ("哈希函数. It maps data.", "哈希函数。It maps data."),
    ("密码学(cryptography)是一门学科", "密码学（cryptography）是一门学科"),
    ("使用 AES (高级加密标准) 加密", "使用 AES（高级加密标准）加密"),
    ("参见(第3章)", "参见（第3章）"),
    ("中文(甲(乙)丙)", "中文（甲（乙）丙）"),  # nested pairs, inner first
    ("(注意),这里", "（注意），这里"),  # the converted pair gives the comma its CJK neighbour
]

LEFT_ALONE = [
    "圆周率约为3.14",
    "共1,000个样本",
    "会议10:30开始",
    "比例是3:2",
    "Hello, world. How are you? Fine: thanks; bye!",
    "然后看看...",
    "运行hash.py即可",
    "运行 hash.py 即可",
    "配置写在config.yaml里",
    "请联系admin@example.com获取",
    "函数f(x)的值",
    "调用foo(bar)函数",
    "见[文档](docs/a.md)",
    "如图![架构图](arch.png)",
    "版本v1.2.3发布了",
    "（已是全角，无需转换）。",
    "Python(一种语言)",  # a word glued to "(" is a call like count(列名): half-width is harmless there
]


@pytest.mark.parametrize(("text", "expected"), CONVERTED)
def test_punct_converts_in_cjk_context(text: str, expected: str) -> None:
    assert punct(text) == expected
    assert normalize(text) == expected


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_punct_leaves_numbers_latin_names_and_markdown_alone(text: str) -> None:
    assert punct(text) == text
    assert normalize(text) == text


def test_punct_mixed_sentence_converts_only_what_is_chinese() -> None:
    text = "圆周率约为3.14,约1,000次中有一次.文件是hash.py,见 https://example.com/a.b?x=1,2 ."
    assert (
        normalize(text)
        == "圆周率约为3.14，约1,000次中有一次。文件是hash.py，见 https://example.com/a.b?x=1,2 ."
    )


# --- Chinese conversion --------------------------------------------------------------------------------


def test_modes_are_the_documented_four() -> None:
    assert T2S_MODES == ("t2s", "tw2sp", "hk2s", "off")


@pytest.mark.parametrize(
    ("mode", "text", "expected"),
    [
        ("t2s", "資訊安全與軟體", "资讯安全与软体"),  # characters only
        ("tw2sp", "資訊安全", "信息安全"),  # Taiwan phrases become mainland ones
        ("tw2sp", "軟體與記憶體", "软件与内存"),
        ("hk2s", "衞生與資訊", "卫生与资讯"),  # Hong Kong variant 衞, which t2s keeps
        ("off", "資訊安全與軟體", "資訊安全與軟體"),
    ],
)
def test_traditional_to_simplified(mode: str, text: str, expected: str) -> None:
    assert chinese(text, mode) == expected
    assert normalize(text, t2s=mode) == expected


def test_default_mode_is_t2s() -> None:
    assert normalize("資訊安全") == "资讯安全"


def test_opencc_chains_are_followed_to_the_end() -> None:
    # OpenCC tw2sp maps 麼 → 么 and 么 → 幺; one pass would not be idempotent.
    once = chinese("麼", "tw2sp")
    assert chinese(once, "tw2sp") == once


def test_unknown_mode_names_the_allowed_ones() -> None:
    with pytest.raises(UsageError) as err:
        normalize("資訊", t2s="t2tw")
    for mode in T2S_MODES:
        assert mode in str(err.value)
    with pytest.raises(UsageError):
        steps("s2t")


def test_missing_opencc_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _converter.cache_clear()
    monkeypatch.setitem(sys.modules, "opencc", None)  # makes `import opencc` raise ImportError
    try:
        with pytest.raises(UsageError, match="pip install opencc"):
            normalize("資訊安全")
        assert normalize("資訊安全", t2s="off") == "資訊安全"  # off never needs it
    finally:
        _converter.cache_clear()


# --- protected segments --------------------------------------------------------------------------------


def test_code_fence_content_is_untouched() -> None:
    text = '說明:\n\n```python\n# 資訊安全, 軟體.\nprint("你好,世界")   \n\n\n\nx = (1, 2)\n```\n\n結束.'
    expected = (
        '说明：\n\n```python\n# 資訊安全, 軟體.\nprint("你好,世界")   \n\n\n\nx = (1, 2)\n```\n\n结束。'
    )
    assert normalize(text, t2s="tw2sp") == expected


@pytest.mark.parametrize(
    "fence",
    [
        "~~~ {.python title='軟體'}\n資訊 = 1, 2\n~~~",
        "````markdown\n```\n軟體.\n```\n````",  # a longer fence holds a shorter one
        "```\n資訊, 軟體.",  # unclosed: runs to the end of the text
    ],
)
def test_other_fences_are_untouched(fence: str) -> None:
    assert normalize(f"資訊:\n{fence}") == f"资讯：\n{fence}"


def test_fence_in_a_list_item_and_in_a_crlf_file() -> None:
    assert (
        normalize("- 步驟:\n  ```sh\n  echo 軟體,\n  ```\n- 完成.")
        == "- 步骤：\n  ```sh\n  echo 軟體,\n  ```\n- 完成。"
    )
    assert normalize("資訊:\r\n```\r\n軟體,\r\n```\r\n") == "资讯：\n```\n軟體,\n```"


def test_inline_code_and_urls_are_untouched() -> None:
    text = "用`軟體, 中文.`檢查,詳見https://example.com/a?q=1,2,然後ftp://x.org/軟 或 www.example.org/p.q."
    assert normalize(text) == (
        "用`軟體, 中文.`检查，详见https://example.com/a?q=1,2，然后ftp://x.org/软 或 www.example.org/p.q."
    )


def test_double_backtick_span_keeps_single_backticks_inside() -> None:
    assert normalize("資訊``a`b, 軟體.``結束") == "资讯``a`b, 軟體.``结束"


# --- unicode and whitespace ----------------------------------------------------------------------------


def test_unicode_rules() -> None:
    text = "\ufeff  Cafe\u0301\u200b 資訊\x00\x07\x85\u200c\u200d \r\nline\t \rtwo\t\n\n\n\n\nend  \n\n"
    assert unicode(text) == "  Café 資訊\nline\ntwo\n\nend\n\n"  # per segment: the ends stay
    assert normalize(text, t2s="off") == "Café 資訊\nline\ntwo\n\nend"
    assert normalize("a\tb") == "a\tb"  # tabs inside a line stay


def test_whitespace_rules_do_not_touch_code() -> None:
    text = "  \n```\ncode  \n\n\n\nend\t\n```\n\n\n"
    assert normalize(text) == "```\ncode  \n\n\n\nend\t\n```"


def test_chinese_paragraph_indent_is_kept() -> None:
    assert (
        normalize("\u3000\u3000第一段.\n\n\u3000\u3000第二段.")
        == "\u3000\u3000第一段。\n\n\u3000\u3000第二段。"
    )


def test_invisible_characters_cannot_hide_a_fence() -> None:
    assert normalize("\u200b```\n軟體,\n```") == "```\n軟體,\n```"


# --- properties ----------------------------------------------------------------------------------------

_CJK = st.sampled_from(list("中文資訊軟體麼么薴記憶體衞安全的是了們说，。？！：；（）「」、"))
_PUNCT = st.sampled_from(
    [*",.?!:;()[]`~@_-/", "...", "``", "```", "~~~", "![", "](", "\n```\n", "\n  ~~~x\n"]
)
_WORD = st.sampled_from(
    ["hash.py", "Hello", "world", "f", "3.14", "1,000", "10:30", "a@b.com", "www", "http"]
)
_SPACE = st.sampled_from(
    [" ", "  ", "\t", "\n", "\n\n\n", "\r\n", "\r", "\u200b", "\ufeff", "\x00", "\u3000", "e\u0301"]
)
_FENCE = st.builds(
    lambda info, body, fence: f"{fence}{info}\n{body}\n{fence}\n",
    st.sampled_from(["", "python", " c++ x"]),
    st.text(st.sampled_from(list("資訊, .?!() \n`~")), max_size=20),
    st.sampled_from(["```", "~~~", "````"]),
)
_INLINE = st.text(st.sampled_from(list("軟體, .?()x")), min_size=1, max_size=8).map(lambda s: f"`{s}`")
_URL = st.builds(
    lambda scheme, path: f"{scheme}example.com/{path}",
    st.sampled_from(["https://", "http://", "ftp://", "www."]),
    st.text(st.sampled_from(list("ab?=,.()_/-")), max_size=8),
)
TEXT = st.lists(
    st.one_of(_CJK, _CJK, _CJK, _PUNCT, _PUNCT, _WORD, _SPACE, _FENCE, _INLINE, _URL), max_size=40
).map("".join)
PROSE = st.lists(
    st.one_of(_CJK, _WORD, st.sampled_from([",", ".", "?", "(", ")", " ", "\n", "\r\n"])), max_size=20
).map("".join)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(TEXT)
def test_split_is_an_exact_partition(text: str) -> None:
    segments = split(text)
    assert "".join(s.text for s in segments) == text
    assert [s.protected for s in segments] == [i % 2 == 1 for i in range(len(segments))]


@PROPERTY
@given(TEXT, st.sampled_from(T2S_MODES))
def test_normalize_is_idempotent(text: str, mode: str) -> None:
    once = normalize(text, t2s=mode)
    assert normalize(once, t2s=mode) == once


@PROPERTY
@given(TEXT)
def test_every_step_is_idempotent(text: str) -> None:
    for step in (unicode, punct, clean, *steps("tw2sp"), *steps("hk2s"), *steps("t2s")):
        once = step(text)
        assert step(once) == once


@PROPERTY
@given(PROSE, _FENCE, PROSE)
def test_fenced_code_survives_any_prose_around_it(before: str, fence: str, after: str) -> None:
    block = code_blocks(fence)[0]
    assert block in normalize(f"{before}\n{fence}\n{after}", t2s="tw2sp")
