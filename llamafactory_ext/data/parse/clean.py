"""Parse step 0: undo site syntax that is not content, keeping every line where it was.

Each rule rewrites lines in place (never adds or removes a line), so every later line number is the
author's. Parsing uses markdown-it-py with its own plugin collection, mdit-py-plugins:

| syntax                                   | rule                                                              |
|------------------------------------------|-------------------------------------------------------------------|
| YAML front matter (``---`` … ``---``), or MkDocs meta-data lines (``author: …`` at the top, known keys) | blanked; a ``title:`` is kept as document metadata, never sample text |
| admonition ``!!!``/``???``/``???+`` (admon) | marker line blanked, content dedented in place; only a placeholder (待补充, to-do / tbd markers, …) or nothing → blanked and dropped |
| content tab ``=== "C++"`` (pymdownx.tabbed, no plugin) | marker line blanked, content dedented in place              |
| ``--8<--`` snippet include fence           | blanked and dropped: the code lives in another file               |
| HTML comment (block or inline)           | removed                                                           |
| other HTML blocks and inline tags        | tags removed, text kept (``<details>``/``<summary>`` so unwrap with their markdown); ``<script>``/``<style>`` blocks removed; ``<img alt=…>`` → ``![alt]()`` so the image rule of qa.py applies |

Lines inside code (fenced or indented) are never touched, except by the dedent of an enclosing
admonition or tab. Inline tags are recognised by a list of HTML element names, so ``List<T>`` or
``a<b`` in prose stay as written.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from mdit_py_plugins.admon import admon_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

# What authors leave in a section they mean to write later.
# (the English markers are matched case-insensitively: to-do, tbd, fix-me, wip, coming soon)
PLACEHOLDER = re.compile(r"^[\s>*_`~（(【\[-]*(?:待补充|待完善|待更新|待续|未完待续|补充中|施工中|略|占位|"
                         r"(?i:todo|tbd|fixme|wip|coming soon))[\s。.…!！)）】\]*_`~-]*$")
_META = re.compile(r"^(title|author|authors|tags|description|date|summary|disqus|comments|hide|template|status|"
                   r"keywords|categories|category):[ \t]+(.*)$", re.IGNORECASE)
_TAB = re.compile(r"^( *)=== +\"[^\"\n]*\" *$")
_FENCE = re.compile(r"^ *(`{3,}|~{3,})")
_SNIPPET = re.compile(r"^\s*-{1,2}8<-{1,2}\s")
_ELEMENTS = ("a|abbr|b|big|blockquote|body|br|center|code|dd|del|details|div|dl|dt|em|font|h[1-6]|head|hr|html|i|"
             "iframe|img|ins|kbd|li|mark|ol|p|pre|s|small|span|strike|strong|sub|summary|sup|table|tbody|td|"
             "tfoot|th|thead|title|tr|tt|u|ul|video|audio|source|figure|figcaption|section|article|meta|link|"
             "input|button|label|form|svg|path|g|nav|header|footer|main|caption|col|colgroup|picture")
_TAG = re.compile(rf"</?(?:{_ELEMENTS})(?=[\s/>])(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_IMG = re.compile(r"<img\b(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_ALT = re.compile(r"\balt\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_TICKS = re.compile(r"`+[^`]*`+")


@dataclass(frozen=True, slots=True)
class Drop:
    """Something blanked on purpose (a counted drop): 1-based line, what, why, an excerpt."""

    line: int
    kind: str
    reason: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class Cleaned:
    text: str
    title: str = ""
    drops: tuple[Drop, ...] = ()


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table").use(front_matter_plugin).use(admon_plugin)


def clean_markdown(text: str) -> Cleaned:
    """``text`` with site syntax undone, same number of lines.

    >>> c = clean_markdown("---\\ntitle: RSA\\n---\\n!!! note \\"提示\\"\\n    注意 <b>e</b> 的取值。\\n")
    >>> (c.title, c.text)
    ('RSA', '\\n\\n\\n\\n注意 e 的取值。\\n')
    """
    lines, drops = text.split("\n"), []
    title = _front_matter(lines)
    _admonitions(lines, drops)
    _tabs(lines)
    _html(lines, drops)
    return Cleaned("\n".join(lines), title, tuple(drops))


def _front_matter(lines: list[str]) -> str:
    tokens = _parser().parse("\n".join(lines))
    if not tokens or tokens[0].type != "front_matter":
        return _meta_lines(lines)
    first, last = tokens[0].map
    lines[first:last] = [""] * (last - first)
    m = re.search(r"^title:\s*['\"]?(.*?)['\"]?\s*$", tokens[0].content, re.MULTILINE)
    return m.group(1) if m else ""


def _meta_lines(lines: list[str]) -> str:
    """MkDocs/Python-Markdown meta-data (``author: …`` lines at the top, up to a blank line): blanked."""
    n = 0
    while n < len(lines) and _META.match(lines[n]):
        n += 1
    if n == 0 or (n < len(lines) and lines[n].strip()):
        return ""
    title = next((m.group(2).strip() for ln in lines[:n] if (m := _META.match(ln)) and m.group(1).lower() == "title"), "")
    lines[:n] = [""] * n
    return title


def _admonitions(lines: list[str], drops: list[Drop]) -> None:
    """Blank each marker line and dedent the content by 4 columns per enclosing admonition."""
    depth = [0] * len(lines)
    for tok in _parser().parse("\n".join(lines)):
        if tok.type != "admonition_open" or tok.map is None:
            continue
        first, last = tok.map
        body = [ln.strip() for ln in lines[first + 1 : last]]
        if not any(body) or PLACEHOLDER.match(" ".join(b for b in body if b)):
            drops.append(Drop(first + 1, "admonition", "placeholder" if any(body) else "empty", lines[first].strip()))
            depth[first + 1 : last] = [99] * (last - first - 1)  # blanked below
        lines[first] = ""
        depth[first + 1 : last] = [d + 4 for d in depth[first + 1 : last]]
    for i, d in enumerate(depth):
        lines[i] = "" if d >= 99 else _dedent(lines[i], d)


def _dedent(line: str, cols: int) -> str:
    """Remove up to ``cols`` columns of leading blanks (a tab counts 4)."""
    i = n = 0
    while i < len(line) and n < cols and line[i] in " \t":
        n += 4 if line[i] == "\t" else 1
        i += 1
    return line[i:]


def _tabs(lines: list[str]) -> None:
    """``=== "Title"`` content tabs: marker blanked, the indented content under it dedented by 4."""
    fence, under = "", None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if under is not None and line.strip() and len(line) - len(line.lstrip(" ")) < under + 4:
            under = None
        if not fence and (t := _TAB.match(line)):
            lines[i], under = "", len(t.group(1))
            continue
        if under is not None:
            lines[i] = _dedent(line, 4)
        if m:
            fence = "" if fence and m.group(1)[0] == fence[0] else fence or m.group(1)


def _html(lines: list[str], drops: list[Drop]) -> None:
    """Comments out, tags out (text kept), snippet-include fences dropped; code lines untouched."""
    code = [False] * len(lines)
    tokens = _parser().parse("\n".join(lines))
    for tok in tokens:
        if tok.type in ("fence", "code_block") and tok.map:
            first, last = tok.map
            code[first:last] = [True] * (last - first)
            if tok.type == "fence" and _SNIPPET.match(tok.content or "-") and all(
                    _SNIPPET.match(x) or not x.strip() for x in tok.content.split("\n")):
                drops.append(Drop(first + 1, "code_block", "snippet_include", tok.content.strip()[:80]))
                lines[first:last] = [""] * (last - first)
        elif tok.type == "html_block" and tok.map:
            _html_block(lines, *tok.map)
            code[tok.map[0] : tok.map[1]] = [True] * (tok.map[1] - tok.map[0])
    for i, line in enumerate(lines):
        if not code[i] and "<" in line:
            lines[i] = _strip_inline(line)


def _html_block(lines: list[str], first: int, last: int) -> None:
    """Replace an HTML block by its text, line for line (comments and scripts go entirely)."""
    block = "\n".join(lines[first:last])
    block = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), block)
    block = _SCRIPT.sub(lambda m: "\n" * m.group(0).count("\n"), block)
    block = _IMG.sub(_img, block)
    text = html.unescape(_TAG.sub("", block))
    lines[first:last] = [ln.rstrip() if ln.strip() else "" for ln in text.split("\n")]


def _strip_inline(line: str) -> str:
    """Inline comments and known tags removed outside `code spans`."""
    out, pos = [], 0
    for m in _TICKS.finditer(line):
        out.append(_plain(line[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_plain(line[pos:]))
    return "".join(out)


def _plain(s: str) -> str:
    return _TAG.sub("", _IMG.sub(_img, _COMMENT.sub("", s)))


def _img(m: re.Match) -> str:
    alt = _ALT.search(m.group(0))
    return f"![{(alt.group(1) or alt.group(2) or '') if alt else ''}]()"
