"""Term tagging: the shipped crypto lexicon, jieba segmentation, English aliases, user lexicons, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.terms import (
    _JIEBA_WORD,
    CATEGORIES,
    Lexicon,
    Term,
    coverage,
    load_lexicon,
    tag_terms,
)
from llamafactory_ext.errors import DataError

CORPUS = Path(__file__).resolve().parents[1] / "examples" / "crypto_notes"
HEADER = "term\taliases\tcategory\n"


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon()


def write(tmp_path: Path, text: str, name: str = "mine.tsv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped lexicon ---------------------------------------------------------------------------


def test_shipped_lexicon_is_large_and_covers_every_category(lexicon):
    assert len(lexicon) >= 220
    per_category = {c: sum(t.category == c for t in lexicon.terms) for c in CATEGORIES}
    assert min(per_category.values()) >= 8, per_category
    assert set(lexicon.categories) == set(CATEGORIES)
    assert len({t.term for t in lexicon.terms}) == len(lexicon)


def test_every_chinese_name_is_found_whole_in_a_sentence(lexicon):
    for sentence in ("关于{}的讨论", "我们使用{}。", "{}和其他概念"):
        for name, term in lexicon.cjk_names.items():
            assert term.term in tag_terms(sentence.format(name), lexicon)[0], (sentence, name)


def test_every_latin_alias_is_found_in_any_letter_case(lexicon):
    for name, term in lexicon.latin_names.items():
        for variant in (name.upper(), name.swapcase()):
            assert term.term in tag_terms(f"我们用{variant}。", lexicon)[0], variant


# --- tagging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms", "categories"),
    [
        ("椭圆曲线上的离散对数问题很难", ("椭圆曲线", "离散对数问题"), ("math",)),
        ("差分密码分析需要大量选择明文", ("差分密码分析", "明文"), ("attack", "general")),
        ("防御中间人攻击要靠认证公钥", ("中间人攻击", "公钥"), ("asymmetric", "attack")),
        ("办公钥匙放在桌上", (), ()),  # 公钥 must not be cut out of 办公|钥匙
    ],
)
def test_chinese_terms_stay_whole(lexicon, text, terms, categories):
    assert tag_terms(text, lexicon) == (terms, categories)


def test_english_aliases_match_case_insensitively_next_to_chinese(lexicon):
    terms, categories = tag_terms("先用aes加密，再用Rsa交换密钥，hmac认证，EcDsA签名，走tls通道", lexicon)
    assert terms[:2] == ("高级加密标准", "加密")  # order of first appearance
    for term in ("RSA算法", "基于哈希的消息认证码", "椭圆曲线数字签名算法", "传输层安全协议"):
        assert term in terms
    assert {"symmetric", "asymmetric", "mac", "signature", "protocol"} <= set(categories)


@pytest.mark.parametrize("text", ["AESX 不是算法", "trsa", "ECDSAs", "hmac_key = 1", "my_tls", "3DESIGN"])
def test_english_aliases_do_not_match_inside_other_words(lexicon, text):
    assert tag_terms(text, lexicon) == ((), ())


def test_longest_alias_wins_and_related_names_map_to_one_term(lexicon):
    assert tag_terms("AES-GCM", lexicon)[0] == ("伽罗瓦计数器模式",)
    assert tag_terms("SHA-256 不是 SHA-2 的全部", lexicon)[0] == ("SHA-256算法", "SHA-2系列")
    assert tag_terms("3DES 与 DES", lexicon)[0] == ("三重数据加密算法", "数据加密标准")
    assert tag_terms("高级加密标准即 AES", lexicon)[0] == ("高级加密标准",)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("椭圆曲线密码分析攻击中间人公钥AESrsa- ，。的和"), max_size=40))
def test_tags_are_lexicon_terms_with_their_sorted_categories(lexicon, text):
    terms, categories = tag_terms(text, lexicon)
    by_term = {t.term: t for t in lexicon.terms}
    assert len(set(terms)) == len(terms) and all(t in by_term for t in terms)
    assert categories == tuple(sorted({by_term[t].category for t in terms}))


def test_coverage_counts_samples_per_category_per_split():
    tags = {"train": [("hash", "mac"), ("hash",), ()], "test": [("mac", "mac")]}
    assert coverage(tags) == {"train": {"hash": 2, "mac": 1}, "test": {"hash": 0, "mac": 1}}


# --- user lexicons ---------------------------------------------------------------------------------


def test_user_tsv_adds_terms_and_merges_aliases(tmp_path):
    path = write(
        tmp_path,
        "# my additions\n" + HEADER + "格基约化\tLLL|lattice reduction\tpost_quantum\n"
        "高级加密标准\tAES256x\tsymmetric\n",
    )
    lexicon = load_lexicon(path)
    assert tag_terms("用 lll 做格基约化", lexicon) == (("格基约化",), ("post_quantum",))
    assert tag_terms("aes256x", lexicon)[0] == ("高级加密标准",)
    assert len(lexicon) == len(load_lexicon()) + 1


def test_plain_word_list_gets_category_user_and_may_repeat_known_terms(tmp_path):
    path = write(tmp_path, "\ufeff# one term per line\n量子安全网关\n椭圆曲线\n", "words.txt")
    lexicon = load_lexicon(path)
    assert tag_terms("部署量子安全网关", lexicon) == (("量子安全网关",), ("user",))
    assert tag_terms("椭圆曲线", lexicon)[1] == ("math",)  # the shipped category is kept


# --- located errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "reason", "fix"),
    [
        ("格基约化\tLLL\tlattice\n", 3, "unknown category 'lattice'", "post_quantum"),
        ("格基约化 LLL post_quantum\n", 3, "expected 3 tab-separated columns", "spaces do not count"),
        ("格基约化\tpost_quantum\n", 3, "found 2", "keep both tabs"),
        ("\tLLL\tmath\n", 3, "empty term", "first column"),
        ("椭圆曲线\t\thash\n", 3, "already has category 'math' (llamafactory_ext/data/lexicons/crypto.tsv:", "'math'"),
        ("格基约化\tAES\tpost_quantum\n", 3, "'AES' already names the term '高级加密标准'", "remove it"),
        ("伽罗瓦/计数器\t\tmode\n", 3, "contains '/'", "replace it with '-'"),
    ],
)
def test_bad_tsv_line_gives_located_error(tmp_path, body, line, reason, fix):
    path = write(tmp_path, "# comment\n" + HEADER + body)
    with pytest.raises(DataError) as err:
        load_lexicon(path)
    assert (err.value.path, err.value.line) == (str(path), line)
    assert reason in err.value.reason and fix in err.value.fix
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_unknown_category_error_lists_the_allowed_ones(tmp_path):
    path = write(tmp_path, HEADER + "格基约化\t\tlatice\n")
    with pytest.raises(DataError) as err:
        load_lexicon(path)
    assert all(c in err.value.fix for c in CATEGORIES)


def test_duplicate_within_user_file_names_both_lines(tmp_path):
    path = write(tmp_path, HEADER + "格基约化\t\tmath\n\n格基约化\t\tpost_quantum\n")
    with pytest.raises(DataError) as err:
        load_lexicon(path)
    assert err.value.line == 4 and f"({path}:2)" in err.value.reason


def test_tabs_without_header_are_rejected(tmp_path):
    path = write(tmp_path, "格基约化\tLLL\tmath\n", "words.txt")
    with pytest.raises(DataError) as err:
        load_lexicon(path)
    assert err.value.line == 1 and "header" in err.value.fix


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(DataError, match="cannot read lexicon file"):
        load_lexicon(tmp_path / "absent.tsv")
    path = tmp_path / "gbk.txt"
    path.write_bytes("格基约化\n".encode() + "量子".encode("gbk") + b"\n")
    with pytest.raises(DataError) as err:
        load_lexicon(path)
    assert err.value.line == 2 and "UTF-8" in err.value.fix


def test_lexicon_entries_are_frozen():
    term = Term("格基约化", ("LLL",), "post_quantum")
    with pytest.raises(AttributeError):
        term.category = "math"  # type: ignore[misc]


# --- the shipped corpus ----------------------------------------------------------------------------


def test_every_corpus_file_spans_several_categories(lexicon):
    files = sorted(CORPUS.glob("*.md"))
    assert len(files) >= 4
    seen: set[str] = set()
    for path in files:
        categories = tag_terms(path.read_text(encoding="utf-8"), lexicon)[1]
        assert len(categories) >= 4, (path.name, categories)
        seen |= set(categories)
    assert len(seen) >= 8, seen


# --- the fast path equals jieba over the whole text ------------------------------------------------


def tag_terms_reference(text: str, lexicon: Lexicon) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The straightforward tagger tag_terms replaced: jieba cuts ALL of the text, then a plain Latin regex."""
    first: dict[Term, int] = {}
    pos = 0
    for token in lexicon.tokenizer.lcut(text, HMM=False) if lexicon.cjk_names else ():
        term = lexicon.cjk_names.get(token)
        if term is not None and term not in first:
            first[term] = pos
        pos += len(token)
    word = "0-9A-Za-z_"
    if lexicon.latin_names:
        body = "|".join(re.escape(n) for n in sorted(lexicon.latin_names, key=len, reverse=True))
        for m in re.finditer(rf"(?<![{word}])(?:{body})(?![{word}])", text, re.IGNORECASE):
            term = lexicon.latin_names[m.group().lower()]
            first[term] = min(first.get(term, m.start()), m.start())
    found = sorted(first, key=first.__getitem__)
    return tuple(t.term for t in found), tuple(sorted({t.category for t in found}))


def test_block_regex_is_jiebas_own():
    """Names are checked against _JIEBA_WORD, and tag_terms cuts jieba's blocks: the two must agree."""
    import jieba

    for code in range(0x10000):
        ch = chr(code)
        assert bool(_JIEBA_WORD.fullmatch(ch)) == bool(jieba.re_han_default.fullmatch(ch)), hex(code)


def test_corpus_paragraphs_tag_exactly_as_a_full_text_cut(lexicon):
    texts = [path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.md"))]
    paragraphs = [p for text in texts for p in text.split("\n\n")]
    assert len(paragraphs) > 100
    tagged = 0
    for text in paragraphs + texts:
        got = tag_terms(text, lexicon)
        assert got == tag_terms_reference(text, lexicon), text
        tagged += bool(got[0])
    assert tagged > len(paragraphs) // 2  # the comparison is not vacuous


def _pieces(lexicon: Lexicon) -> st.SearchStrategy[str]:
    names = sorted(lexicon.cjk_names)
    latin = sorted(lexicon.latin_names)
    name_chars = sorted({ch for n in names for ch in n if ord(ch) > 0x7F})
    return st.one_of(
        st.text(alphabet=st.sampled_from(name_chars), min_size=1, max_size=4),  # words across name edges
        st.sampled_from(names),
        st.sampled_from(names).map(lambda n: n[: len(n) // 2 + 1]),  # prefixes that overlap whole names
        st.sampled_from(names).map(lambda n: n[len(n) // 2 :]),
        st.sampled_from(latin).map(str.upper),
        st.sampled_from(latin),
        st.sampled_from(["办公", "钥匙", "的", "和", "使用", "密", "码", "公", "钥", "算法", "协议", "签名"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
        st.sampled_from(list("，。、；：？！（）《》“”—…·- +#&._%\t\n\r") + ["\r\n", "\u3000", "\u00a0"]),
        st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4),
        st.text(alphabet=st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF), max_size=2),  # outside jieba's Han
    )


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_pieces(load_lexicon()), max_size=30))
@example(pieces=["办公钥匙，", "我们用公钥"])  # cutting from the name on would wrongly find 公钥 in 办公钥匙
def test_mixed_text_tags_exactly_as_a_full_text_cut(lexicon, pieces):
    text = "".join(pieces)
    assert tag_terms(text, lexicon) == tag_terms_reference(text, lexicon)


def test_names_jieba_cannot_emit_and_empty_lexicons_behave_as_before():
    odd = Lexicon((Term("伽罗瓦/计数器", (), "mode"), Term("公钥", ("pk",), "asymmetric")))  # '/' bypasses the loader
    empty = Lexicon(())
    for text in ("伽罗瓦/计数器用公钥", "pk 公钥", ""):
        assert tag_terms(text, odd) == tag_terms_reference(text, odd)
        assert tag_terms(text, empty) == ((), ())
