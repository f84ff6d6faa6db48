"""Turn a raw docstring into one short prose text, or reject it.

Pure functions, no I/O. The text kept is the docstring's opening prose: the first paragraph that
reads as prose (signature lines such as ``add(x1, x2, /, ...)`` of C functions and ufuncs are
skipped) and, if asked, the prose paragraphs right after it up to the first section header,
directive or example; reST/Markdown markup is reduced to its words; whitespace is collapsed; the
result is cut at a sentence or word boundary. Texts that are too short, templates whose placeholders were never filled
(``%(klass)s``), examples and mostly non-word texts are rejected.
"""

from __future__ import annotations

import re
import unicodedata

MIN_CHARS = 40
MAX_CHARS = 400

_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
# "name(args) -> result" alone in a paragraph, possibly several such lines (overloads).
_SIGNATURE = re.compile(r"^\s*[\w.]+\s*\(.*\)\s*(->\s*.+)?\s*$")
_SECTION_UNDERLINE = re.compile(r"^\s*[-=~^\"'`#*+]{3,}\s*$", re.MULTILINE)
_ROLE = re.compile(r":[\w:.+-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :func:`~a.b` / :ref:`text <target>`
_DOUBLE_BACKTICK = re.compile(r"``([^`]*)``")
_BACKTICK = re.compile(r"`~?([^`]*)`_{0,2}")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)]+)\)")
_EMPHASIS = re.compile(r"(\*{1,2})(\S(?:.*?\S)?)\1")
_FOOTNOTE = re.compile(r"\s*\[\d+\]_")
_WS = re.compile(r"\s+")
_TEMPLATE = re.compile(r"%\(\w+\)[sdr]|\{\{|\}\}|\{\w+\}|\$\{?\w+\}?|<<\w+>>")
_NON_WORD = re.compile(r"[^0-9a-z]+")
# Tokens that name things (CamelCase, snake_case, dotted paths, digits, brackets): the parts a
# generated docstring changes from one class to the next ("The [BertModel] forward method ...").
_IDENTIFIER = re.compile(r"^.[^A-Z]*[A-Z]|[_\d\[\]()/]|\w\.\w")
# Paragraphs a library adds when it copies another library's docstring (dask); the copied text
# follows, and the cross-label duplicate rule then drops it.
_COPY_NOTES = ("This docstring was copied from", "Some inconsistencies with the Dask version")


def _is_prose(paragraph: str) -> bool:
    lines = [ln for ln in paragraph.splitlines() if ln.strip()]
    if not lines:
        return False
    first = lines[0].lstrip()
    if first.startswith((".. ", ">>>", "...", "|", "+--", "- ", "* ", *_COPY_NOTES)):
        return False
    if all(_SIGNATURE.match(ln) for ln in lines):
        return False
    # A numpydoc / Google section header ("Parameters\n----------", "Args:").
    header = len(lines) == 1 and first.rstrip().endswith(":") and len(first.split()) <= 2
    return not (header or _SECTION_UNDERLINE.search(paragraph))


def strip_markup(text: str) -> str:
    """reST roles, literals and links and Markdown links/emphasis reduced to their words."""
    text = _ROLE.sub(lambda m: m.group(1).strip(), text)
    text = _DOUBLE_BACKTICK.sub(r"\1", text)
    text = _BACKTICK.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return _FOOTNOTE.sub("", text)


def normalize_whitespace(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def truncate(text: str, max_chars: int = MAX_CHARS) -> str:
    """At most ``max_chars``: cut after the last full sentence if one ends in the second half,
    else at the last word boundary."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars + 1]
    sentence_end = max(head.rfind(". "), head.rfind(".\n"))
    if sentence_end >= max_chars // 2:
        return head[:sentence_end + 1]
    cut = head.rfind(" ")
    return head[:cut if cut > 0 else max_chars].rstrip(" ,;:")


def looks_like_prose(text: str) -> bool:
    letters = sum(map(str.isalpha, text))
    return len(text.split()) >= 5 and letters >= 0.6 * len(text) and not _TEMPLATE.search(text)


def _clean_paragraph(paragraph: str) -> str:
    # A reST literal-block marker ("... as follows::") reads as a colon once the block is gone.
    return normalize_whitespace(strip_markup(paragraph)).replace("::", ":")


def clean_docstring(doc: str, *, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
                    max_paragraphs: int = 1) -> str | None:
    """The opening prose of ``doc``: its first prose paragraph (leading signature lines skipped)
    and, with ``max_paragraphs`` > 1, the prose paragraphs right after it, up to the first section
    header, directive or example; markup-free, whitespace-normalised, cut to ``max_chars``.
    ``None`` when that text is shorter than ``min_chars`` or does not read as prose."""
    paragraphs = _PARAGRAPH_SPLIT.split(doc.strip())
    start = next((i for i, p in enumerate(paragraphs) if _is_prose(p)), None)
    if start is None:
        return None
    parts = [_clean_paragraph(paragraphs[start])]
    for paragraph in paragraphs[start + 1:start + max_paragraphs]:
        if not _is_prose(paragraph) or sum(len(p) + 1 for p in parts) >= max_chars:
            break
        parts.append(_clean_paragraph(paragraph))
    text = truncate(" ".join(p for p in parts if p), max_chars)
    if len(text) < min_chars or not looks_like_prose(text):
        return None
    return text


def dedup_key(text: str) -> str:
    """Equality key for duplicates: case, punctuation and spacing differences do not count."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def template_key(text: str) -> str:
    """Key shared by texts that differ only in the names they mention: one generated docstring
    instantiated for many classes counts once per label. Names are identifier-like tokens and
    capitalised words after the first ("The bare Maskformer Model ...", "Lexer for Haskell")."""
    words = []
    for i, token in enumerate(text.split()):
        core = token.strip(".,;:!?\"'()")
        named = bool(core) and (bool(_IDENTIFIER.search(core)) or (i > 0 and core[0].isupper()))
        words.append("X" if named else core)
    return dedup_key(" ".join(words))
