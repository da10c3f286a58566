"""Domain term tagging: shipped lexicons (cryptography first) + jieba → (terms, categories) per text.

Converters call tag_terms() to fill Sample.tags, which the split stratifies on; coverage() feeds the report.
Pure apart from reading lexicon files; jieba is imported only when the first text is tagged.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

from ..errors import DataError

CATEGORIES = (
    "symmetric", "asymmetric", "hash", "mac", "signature", "protocol", "attack", "national_standard",
    "key_management", "randomness", "pki", "mode", "math", "post_quantum", "general",
)  # fmt: skip
USER_CATEGORY = "user"  # what terms from a plain one-term-per-line file get
HEADER = ("term", "aliases", "category")
SHIPPED = ("crypto.tsv",)

# High enough that a lexicon term beats any split of it into common words, low enough that ordinary
# words around it keep their own segmentation ("办公钥匙" stays 办公|钥匙, not 办|公钥|匙).
_TERM_FREQ = 100_000
_CJK = re.compile(r"[\u4e00-\u9fd5]")  # jieba's own Han range: names with such a character go to jieba
_JIEBA_WORD = re.compile(r"[\u4e00-\u9fd5a-zA-Z0-9+#&._%\-]+")  # jieba never cuts inside such a run
_WORD_CHAR = "0-9A-Za-z_"  # ASCII word boundaries: "AES" inside "使用AES加密" matches, inside "AESX" not
# An ASCII name counts only as a standalone word of text (see _standalone). Its token is the run of these
# characters around it: brackets, quotes, commas, "*", backticks and backslashes end a token ("[AES](url)",
# "**CA**", LaTeX's gcd command).
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+#/:@%=&~?!$^|")
# A URL, e-mail or path ("/etc/ssh", "~/.ssh"): no word of text inside. A slash alone is no path: "AES/DES",
# "TLS/SSL" list names.
_NOT_TEXT = re.compile(r"://|@|^[/~.]")
# A file name or dotted identifier ("ca.crt", "AES.new"); an alias that is an identifier itself
# ("compare_digest") is meant to be found in one ("hmac.compare_digest").
_DOTTED = re.compile(r"[0-9A-Za-z_]\.[A-Za-z_]")
# 00:1a:ca:… MAC addresses, key fingerprints.
_HEX_GROUPS = re.compile(r"(?:[0-9A-Fa-f]{2}[:-]){2,}[0-9A-Fa-f]{2}")
# Three or more blank-separated bytes, one with a digit: a hex dump ("4f ca 12 3e"), where "CA" is no term.
_HEX_RUN = re.compile(r"(?<!\S)[0-9A-Fa-f]{2}(?:[ \t]+[0-9A-Fa-f]{2}){2,}(?!\S)")
# Names that mean something else before these words: "MAC地址" / "MAC address" is a network address.
_FALSE_FRIENDS = {"mac": re.compile(r"\s*(?:地址|层|帧|电脑|address|OS\b|os\b)", re.IGNORECASE)}


@dataclass(frozen=True)
class Term:
    """One lexicon entry: a canonical (usually Chinese) term, its other names and its category."""

    term: str
    aliases: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class Lexicon:
    """The merged lexicon. Lookup structures are built on first use and cached on the instance."""

    terms: tuple[Term, ...]

    def __len__(self) -> int:
        return len(self.terms)

    @cached_property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({t.category for t in self.terms}))

    @cached_property
    def cjk_names(self) -> dict[str, Term]:
        """Names containing Chinese characters (terms and aliases) → Term; jieba keeps each one whole."""
        return {n: t for t in self.terms for n in (t.term, *t.aliases) if _CJK.search(n)}

    @cached_property
    def latin_names(self) -> dict[str, Term]:
        """Other names, lower-cased → Term; found by one case-insensitive regex."""
        return {n.lower(): t for t in self.terms for n in (t.term, *t.aliases) if not _CJK.search(n)}

    @cached_property
    def cjk_pattern(self) -> re.Pattern[str] | None:
        """Finds any Chinese name as a plain substring: only jieba blocks with a hit need cutting."""
        names = [n for n in self.cjk_names if _JIEBA_WORD.fullmatch(n)]  # other names never come out of jieba
        return re.compile(_trie_regex(names)) if names else None

    @cached_property
    def latin_pattern(self) -> re.Pattern[str] | None:
        if not self.latin_names:
            return None
        body = _trie_regex(self.latin_names)
        # The leading first-letter lookahead changes no match; it lets re skip ahead instead of testing the
        # lookbehind at every position (4x faster on Chinese text).
        first = "".join(sorted({re.escape(n[0]) for n in self.latin_names}))
        return re.compile(rf"(?=[{first}])(?<![{_WORD_CHAR}])(?:{body})(?![{_WORD_CHAR}])", re.IGNORECASE)

    @cached_property
    def tokenizer(self):  # -> jieba.Tokenizer; untyped so jieba stays a lazy import
        return _jieba_tokenizer(tuple(sorted(self.cjk_names)))


def _trie_regex(words: Iterable[str]) -> str:
    """One alternation shaped as a prefix trie: ~10x faster than "a|b|c…" over hundreds of aliases.

    Optional tails are greedy, so the longest name wins ("AES-GCM" over "AES") and the regex
    backtracks to a shorter one when the longer fails the word boundary.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # end-of-word marker

    def emit(node: dict) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else f"(?:{'|'.join(alts)})"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


@lru_cache(maxsize=8)
def _jieba_tokenizer(words: tuple[str, ...]):
    """A private jieba.Tokenizer (the global one stays untouched) that knows every lexicon word."""
    try:
        import jieba
    except ImportError as e:  # pragma: no cover - jieba is a declared dependency
        raise ImportError("term tagging needs jieba: pip install jieba") from e
    jieba.setLogLevel(logging.WARNING)  # silence "Building prefix dict..." on every first use
    tokenizer = jieba.Tokenizer()
    for word in words:
        tokenizer.add_word(word, freq=_TERM_FREQ)
    return tokenizer


def tag_terms(text: str, lexicon: Lexicon) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(terms found in order of first appearance, sorted unique categories) for one text."""
    first: dict[Term, int] = {}
    names = lexicon.cjk_names
    for pos, token in _name_block_tokens(text, lexicon):
        term = names.get(token)
        if term is not None and term not in first:
            first[term] = pos
    if lexicon.latin_pattern is not None:
        for m in lexicon.latin_pattern.finditer(text):
            if _standalone(text, m.start(), m.end()):
                term = lexicon.latin_names[m.group().lower()]
                first[term] = min(first.get(term, m.start()), m.start())
    found = sorted(first, key=first.__getitem__)
    return tuple(t.term for t in found), tuple(sorted({t.category for t in found}))


def _standalone(text: str, start: int, end: int) -> bool:
    """Whether the ASCII name at text[start:end] is a word of text, not part of a URL, e-mail, path, file name,
    dotted identifier, hex dump, or a false friend ("MAC地址")."""
    name, token = text[start:end], _token(text, start, end)
    if token != name and (_NOT_TEXT.search(token) or _HEX_GROUPS.search(token)):
        return False
    if token != name and "_" not in name and _DOTTED.search(token):
        return False
    friend = _FALSE_FRIENDS.get(name.lower())
    if friend is not None and friend.match(text, end):
        return False
    return not (len(name) == 2 and _in_hex_dump(text, start))


def _token(text: str, start: int, end: int) -> str:
    """The run of _TOKEN_CHARS around text[start:end], less the sentence punctuation glued to its end."""
    while start and text[start - 1] in _TOKEN_CHARS:
        start -= 1
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return text[start:end].rstrip(".:!?")


def _in_hex_dump(text: str, pos: int) -> bool:
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    runs = _HEX_RUN.finditer(line)
    return any(m.start() <= pos - line_start < m.end() and re.search(r"\d", m.group()) for m in runs)


def _name_block_tokens(text: str, lexicon: Lexicon) -> Iterator[tuple[int, str]]:
    """(offset, token) of jieba's cut of `text`, but only for the blocks that contain a Chinese name.

    jieba cuts each maximal run of its block regex on its own, and every name lies inside one run, so a
    run without a name cannot yield one: skipping it leaves every token and offset of a full-text cut as is.
    """
    if lexicon.cjk_pattern is None:
        return
    block = _jieba_block_regex()
    search, cut, size = lexicon.cjk_pattern.search, lexicon.tokenizer.lcut, len(text)
    backwards = ""  # the text reversed, made on the first hit: block starts are found by matching leftwards
    pos = 0
    while (hit := search(text, pos)) is not None:
        backwards = backwards or text[::-1]
        left = block.match(backwards, size - hit.start())
        start = hit.start() - (left.end() - left.start() if left else 0)
        pos = block.match(text, hit.start()).end()
        for token in cut(text[start:pos], HMM=False):  # HMM only invents words we do not need
            yield start, token
            start += len(token)


@lru_cache(maxsize=1)
def _jieba_block_regex() -> re.Pattern[str]:
    """jieba's own block regex (re_han_default, used when cut_all=False), so block bounds are exactly its."""
    import jieba

    return jieba.re_han_default


def coverage(tag_lists_per_split: dict[str, list[tuple[str, ...]]]) -> dict[str, dict[str, int]]:
    """Samples per category per split; every split lists every category seen anywhere (0 when absent)."""
    counts = {split: Counter(c for tags in lists for c in set(tags)) for split, lists in tag_lists_per_split.items()}
    categories = sorted(set().union(*counts.values()))
    return {split: {c: counts[split][c] for c in categories} for split in counts}


# --- loading -------------------------------------------------------------------------------------


def load_lexicon(extra: Path | None = None) -> Lexicon:
    """The shipped lexicons, plus a user file (same TSV format, or one term per line → category "user")."""
    entries: list[tuple[Term, str, int]] = []
    for name in SHIPPED:
        resource = resources.files("llamafactory_ext.data").joinpath("lexicons", name)
        entries += _parse(resource.read_text(encoding="utf-8"), f"llamafactory_ext/data/lexicons/{name}")
    if extra is not None:
        entries += _parse(_read_text(Path(extra)), str(extra))
    return _merge(entries)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(str(path), None, f"cannot read lexicon file ({e.strerror})", "check the path") from None
    try:
        return data.decode("utf-8-sig")  # tolerate the BOM Windows editors add
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(str(path), line, "not UTF-8 text", "save the file as UTF-8") from None


def _parse(text: str, path: str) -> list[tuple[Term, str, int]]:
    rows = [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1)]
    rows = [(n, line) for n, line in rows if line.strip() and not line.lstrip().startswith("#")]
    if rows and tuple(c.strip() for c in rows[0][1].split("\t")) == HEADER:
        return [(_tsv_row(line, path, n), path, n) for n, line in rows[1:]]
    return [(_plain_row(line, path, n), path, n) for n, line in rows]


def _plain_row(line: str, path: str, n: int) -> Term:
    if "\t" in line:
        raise DataError(
            path, n, "tab-separated columns but no header line",
            "start the file with the header 'term<TAB>aliases<TAB>category', or write one term per line without tabs",
        )  # fmt: skip
    return Term(_checked_name(line.strip(), path, n), (), USER_CATEGORY)


def _tsv_row(line: str, path: str, n: int) -> Term:
    cols = line.split("\t")
    if len(cols) != len(HEADER):
        raise DataError(
            path, n, f"expected 3 tab-separated columns (term, aliases, category), found {len(cols)}",
            "separate the columns with one tab each (spaces do not count); keep both tabs when aliases is empty",
        )  # fmt: skip
    term, aliases, category = (c.strip() for c in cols)
    if category not in (*CATEGORIES, USER_CATEGORY):
        raise DataError(path, n, f"unknown category '{category}'", f"use one of: {', '.join(CATEGORIES)}, user")
    if not term:
        raise DataError(path, n, "empty term", "write the term in the first column")
    names = dict.fromkeys(_checked_name(a.strip(), path, n) for a in aliases.split("|") if a.strip())
    names.pop(term, None)  # an alias equal to the term adds nothing
    return Term(_checked_name(term, path, n), tuple(names), category)


def _checked_name(name: str, path: str, n: int) -> str:
    """Chinese names must be one jieba run, or jieba would cut them and they could never match."""
    if _CJK.search(name) and not _JIEBA_WORD.fullmatch(name):
        bad = next(ch for ch in name if not _JIEBA_WORD.fullmatch(ch))
        raise DataError(
            path, n, f"term '{name}' contains {bad!r}, where jieba always splits a Chinese word",
            "drop that character or replace it with '-' (letters, digits and + # & . _ % - are fine)",
        )  # fmt: skip
    return name


def _merge(entries: list[tuple[Term, str, int]]) -> Lexicon:
    """One Term per name; a repeated term in the same category merges its aliases, else it is an error."""
    terms: dict[str, Term] = {}
    owner: dict[str, tuple[str, str, int]] = {}  # folded name → (term, path, line) that claimed it
    for entry, path, n in entries:
        old = terms.get(entry.term)
        if old is not None and entry.category == USER_CATEGORY:
            continue  # a plain word list may repeat known terms: "user" is no choice of category
        if old is not None and old.category != entry.category:
            _, p, m = owner[_fold(entry.term)]
            raise DataError(
                path, n, f"term '{entry.term}' already has category '{old.category}' ({p}:{m})",
                f"give each term one category: change this line to '{old.category}' or remove it",
            )  # fmt: skip
        for name in (entry.term, *entry.aliases):
            claimed = owner.setdefault(_fold(name), (entry.term, path, n))
            if claimed[0] != entry.term:
                raise DataError(
                    path, n, f"'{name}' already names the term '{claimed[0]}' ({claimed[1]}:{claimed[2]})",
                    "a name may point to one term only: remove it from one of the two lines",
                )  # fmt: skip
        aliases = (*old.aliases, *entry.aliases) if old else entry.aliases
        terms[entry.term] = Term(entry.term, tuple(dict.fromkeys(aliases)), entry.category)
    return Lexicon(tuple(terms.values()))


def _fold(name: str) -> str:
    """Latin names match case-insensitively, so "Mac" and "MAC" are the same name; Chinese ones as written."""
    return name if _CJK.search(name) else name.lower()
