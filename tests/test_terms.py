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
    _standalone,
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


@pytest.mark.parametrize(
    "text",
    [
        "00000010: 4f ca 12 3e 55 66 ab cd  |O..>Uf..|",  # hex dump: "ca" is a byte
        "服务器指纹为 02:c8:dc:ca:59:40:2c，请核对",  # colon-separated hex
        "把 ca.crt 和 server.crt 放到同一目录",  # file names
        "见 ~/.ssh/config 与 /etc/ssh/sshd_config",  # paths
        "下载地址 https://ssh.example.com/ca/crt?salt=1 即可",  # URL
        "发邮件到 admin@ssh.org 申请",  # e-mail
        "调用 AES.new(key) 再读 salt.hex()",  # dotted identifiers
        "变量 hmac_key、ssh_port、salt_len 都是整数",  # snake_case identifiers
        "网卡的MAC地址是全球唯一的",  # MAC address, not a message authentication code
        "MAC address 与 Mac OS 无关",
    ],
)
def test_ascii_names_inside_dumps_files_identifiers_urls_are_no_terms(lexicon, text):
    assert tag_terms(text, lexicon) == ((), ())


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("由 CA 签发证书", "证书颁发机构"),
        ("**CA**负责签发", "证书颁发机构"),
        ("用CRT加速RSA解密", "中国剩余定理"),
        ("通过 SSH 登录服务器", "安全外壳协议"),
        ("口令加 salt 再哈希", "盐值"),
        ("计算 MAC(k, m) 并比较", "消息认证码"),
        ("常见的 AES/DES 算法", "数据加密标准"),  # a slash lists names: no path
        ("参考 [AES](https://example.com/aes) 标准", "高级加密标准"),  # link text is text
        ("X.509证书的结构", "X.509证书"),
        ("用 hmac.compare_digest 比较", "常数时间比较"),  # an alias that is an identifier is found in one
    ],
)
def test_standalone_ascii_names_still_count(lexicon, text, term):
    assert term in tag_terms(text, lexicon)[0]


NEW_TERMS = [
    ("用 LFSR 生成密钥流", "线性反馈移位寄存器", "symmetric"),
    ("这道题用LLL算法求短向量", "LLL算法", "math"),
    ("先做格基规约再找短向量", "格基规约", "math"),
    ("用 Coppersmith 方法求小根", "Coppersmith攻击", "attack"),
    ("d 太小时可用Wiener攻击，即维纳攻击", "维纳攻击", "attack"),
    ("同一模数加密同一消息会遭共模攻击", "共模攻击", "attack"),
    ("e=3 且消息发给多人时可用广播攻击", "广播攻击", "attack"),
    ("Håstad's broadcast attack 的前提是 e 很小", "广播攻击", "attack"),
    ("p-1 光滑时用 Pohlig–Hellman 求离散对数", "Pohlig-Hellman算法", "math"),
    ("阶不大时用BSGS算法", "大步小步算法", "math"),
    ("这个生成器是 LCG，可以预测", "线性同余生成器", "randomness"),
    ("Python 的 random 模块基于 MT19937", "梅森旋转算法", "randomness"),
    ("仿射密码的加密函数是 E(x)=ax+b", "仿射密码", "general"),
    ("栅栏密码把明文分成若干行", "栅栏密码", "general"),
    ("希尔密码用矩阵乘法加密", "希尔密码", "general"),
    ("Playfair 用 5x5 的密钥方阵", "Playfair密码", "general"),
    ("维吉尼亚密码是多表代换的代表", "维吉尼亚密码", "general"),
    ("培根密码用 A 和 B 两种字体", "培根密码", "general"),
    ("摩斯密码由点和划组成", "摩斯密码", "general"),
    ("凯撒密码属于单表代换", "单表代换密码", "general"),
    ("多表代换能抵抗简单的频率分析", "多表代换密码", "general"),
    ("服务器泄露填充是否正确时可发起 padding oracle 攻击", "填充预言攻击", "attack"),
    ("PKCS#1 v1.5 填充会遭 Bleichenbacher 攻击", "Bleichenbacher攻击", "attack"),
    ("d < N^0.292 时用 Boneh-Durfee", "Boneh-Durfee攻击", "attack"),
    ("e 很小时的低加密指数攻击", "低加密指数攻击", "attack"),
    ("两个线性相关的消息可用 Franklin-Reiter 攻击", "Franklin-Reiter相关消息攻击", "attack"),
    ("CBC 模式下的字节翻转攻击能改写明文", "CBC字节翻转攻击", "attack"),
    ("用 Pollard rho 分解中等大小的整数", "Pollard-rho算法", "math"),
    ("p-1 光滑时用 Pollard p-1 分解 n", "Pollard-p-1算法", "math"),
    ("维纳攻击用连分数逼近 e/N", "连分数", "math"),
    ("一次一密的加密就是异或", "异或运算", "math"),
    ("置换密码只打乱字母的顺序", "置换密码", "general"),
    ("代换密码把每个字母换成另一个", "代换密码", "general"),
    ("Atbash 把字母表倒过来", "埃特巴什码", "general"),
    ("猪圈密码用格子符号表示字母", "猪圈密码", "general"),
    ("用重合指数估计维吉尼亚密钥长度", "重合指数", "attack"),
    ("Kasiski 试验通过重复片段的间距猜密钥长度", "卡西斯基试验", "attack"),
    ("用 Berlekamp-Massey 还原 LFSR 的反馈多项式", "Berlekamp-Massey算法", "attack"),
    ("ECDSA 的 nonce 重用会泄露私钥，即 nonce重用", "随机数重用攻击", "attack"),
    ("原像攻击比碰撞攻击更难", "原像攻击", "attack"),
    ("MD5 存在哈希长度扩展攻击", "长度扩展攻击", "attack"),
    ("p 和 q 很接近时用费马分解", "费马分解法", "math"),
    ("Merkle–Hellman 背包密码已被攻破", "背包密码", "asymmetric"),
    ("Rabin密码的安全性等价于大整数分解", "Rabin密码", "asymmetric"),
    ("Paillier 加法同态", "Paillier密码", "asymmetric"),
]


@pytest.mark.parametrize(("text", "term", "category"), NEW_TERMS)
def test_ctf_and_classical_staples_are_found(lexicon, text, term, category):
    terms = tag_terms(text, lexicon)[0]
    assert term in terms
    assert {t.term: t.category for t in lexicon.terms}[term] == category


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
        "# my additions\n" + HEADER + "量子随机数发生器\tQRNG|quantum RNG\trandomness\n"
        "高级加密标准\tAES256x\tsymmetric\n",
    )
    lexicon = load_lexicon(path)
    assert tag_terms("用 qrng 做量子随机数发生器", lexicon) == (("量子随机数发生器",), ("randomness",))
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
        ("量子随机数发生器\tAES\trandomness\n", 3, "'AES' already names the term '高级加密标准'", "remove it"),
        ("格基约化\t\tmath\n", 3, "'格基约化' already names the term '格基规约'", "remove it"),
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
    path = write(tmp_path, HEADER + "量子随机数发生器\t\tmath\n\n量子随机数发生器\t\tpost_quantum\n")
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
    """The straightforward tagger tag_terms replaced: jieba cuts ALL of the text, then a plain Latin regex
    (whose hits pass the same standalone-word rule)."""
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
            if not _standalone(text, m.start(), m.end()):
                continue
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
