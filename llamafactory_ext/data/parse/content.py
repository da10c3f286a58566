"""What an answer really holds: drop rules for answers with nothing to learn, images → alt text.

| reason            | the answer (code fences aside) holds                                        |
|-------------------|-----------------------------------------------------------------------------|
| empty             | nothing                                                                     |
| placeholder       | only a placeholder word: 待补充, 待完善, to-do / tbd markers, …               |
| pointer           | one short sentence sending the reader elsewhere ("具体参见下面的介绍。")    |
| image_only        | only images                                                                 |
| toc               | only links to anchors of the same page (``[x](#y)``): a table of contents   |
| link_only         | only links (and images), no text of its own beyond "参见"/"详见"/"链接如下", or one sentence pointing at a link ("更多方法可以参考 <url>") |
| link_list         | a list in which at least half of the items are links (exercises, further reading) |

An image inside a textual answer is replaced by its alt text (nothing when it has none, or when the
alt is a file name or an editor's generated id such as ``image-20180714222206782``); code fences are
never touched.
"""

from __future__ import annotations

import re

from .clean import PLACEHOLDER

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\((?:[^()\n]|\([^()\n]*\))*\)|!\[([^\]\n]*)\]\[[^\]\n]*\]")
_LINK = re.compile(r"\[([^\]\n]*)\]\(([^()\s\n]*)(?:\s+\"[^\"\n]*\")?\)|<https?://[^>\s]+>|https?://\S+")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*\S+.*$", re.MULTILINE)
_ELSEWHERE = re.compile(r"参见|详见|见下|见上|请看|请参考|可以参考|参考下|参考上|后文|下文|上文")
_POINTER = re.compile(r"具体|详细|更多|请|参见|参考|详见|可见|见|链接|地址|如下|内容|以下")  # "具体请参见 <url>" is a link
_MACHINE_ALT = re.compile(r"^(?:(?=[\w.-]*\d{4})[\w.-]++|[\w-]+\.(?:png|jpe?g|gif|svg|webp|bmp))$", re.IGNORECASE)
_ITEM = re.compile(r"^\s*(?:[-+*]|\d{1,9}[.)])\s+\S")
_NOISE = re.compile(r"[\s\-+*#>|`_~.,:;：；，。、!！?？()（）\[\]【】\d]+")


def drop_reason(text: str) -> str | None:
    """Why ``text`` is no answer (a key of the table above), or None when it is one.

    >>> [drop_reason(t) for t in ("", "待补充", "![图](a.png)", "- [RSA](#rsa)\\n- [DSA](#dsa)", "[链接](http://x)",
    ...  "如下图所示。![a](b.png)", "每轮依次做字节替换、行移位和列混淆，如图 ![轮函数](b.png) 所示。")]
    ['empty', 'placeholder', 'image_only', 'toc', 'link_only', 'image_only', None]
    """
    prose = _REF_DEF.sub("", _FENCE.sub("\x00", text)).strip()
    if not prose:
        return "empty"
    if "\x00" in prose and not prose.replace("\x00", "").strip():
        return None  # only code: its own rules decide
    if PLACEHOLDER.match(prose):
        return "placeholder"
    if len(prose) < 24 and _ELSEWHERE.search(prose) and not _LINK.search(prose):
        return "pointer"
    no_images = _IMAGE.sub("", prose)
    if _IMAGE.search(prose) and prose_length(no_images) < 16 and re.search(r"[图圖]", no_images):
        return "image_only"  # "组合生成器一般如下图所示。" + the figure: the content was the image
    if not _NOISE.sub("", no_images.replace("\x00", "")) and _IMAGE.search(prose):
        return "image_only" if not _LINK.search(no_images) else "link_only"
    links = _LINK.findall(no_images)
    if links and len(_POINTER.sub("", _NOISE.sub("", _LINK.sub("", no_images).replace("\x00", "")))) <= 2:
        anchors = [m for m in re.finditer(r"\]\((#[^)]*)\)", no_images)]
        return "toc" if len(anchors) == len(links) else "link_only"
    if links and "\n" not in prose and _POINTER.search(_LINK.sub("", prose)):
        return "link_only"
    return "link_list" if links and _link_list(no_images) else None


def _link_list(text: str) -> bool:
    items = [ln for ln in text.split("\n") if _ITEM.match(ln)]
    return len(items) >= 2 and 2 * sum(1 for ln in items if _LINK.search(ln)) >= len(items) and \
        len(items) * 2 >= len([ln for ln in text.split("\n") if ln.strip()])


def images_to_alt(text: str) -> str:
    """Each image outside code fences replaced by its alt text.

    >>> images_to_alt("如图 ![RSA 流程](a.png) 所示。\\n```\\n![x](y)\\n```")
    '如图 RSA 流程 所示。\\n```\\n![x](y)\\n```'
    """
    out, pos = [], 0
    for m in _FENCE.finditer(text):
        out.append(_alt(text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_alt(text[pos:]))
    return "".join(out)


def _alt(s: str) -> str:
    s = _IMAGE.sub(lambda m: _words((m.group(1) or m.group(2) or "").strip()), s)
    return re.sub(r"(?m)^[ \t]+$", "", s)


def _words(alt: str) -> str:
    """Alt text, unless it is a file name or an editor's id ("image-20180714222206782", "IMG_0042.png")."""
    return "" if _MACHINE_ALT.match(alt) else alt


def prose_length(text: str) -> int:
    """Characters of text outside code fences; markup, blanks and URLs (a link counts its text) not counted."""
    text = _LINK.sub(lambda m: m.group(1) or "", _FENCE.sub("", images_to_alt(text)))
    return len(_NOISE.sub("", text))
