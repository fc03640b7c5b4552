"""Text normalisation for ingest: HTML to plain text, whitespace, language tag and a dedupe hash.

Pure Python (no torch, no Django): the web process calls it for every pasted, uploaded, pushed or polled text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser

# Content of these elements is never prose: scripts, styles and embedded documents are dropped whole.
_SKIPPED_ELEMENTS = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
# Block-level elements end a word: "<p>a</p><p>b</p>" must read "a b", not "ab".
_BLOCK_ELEMENTS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "title",
})
_LOOKS_LIKE_HTML = re.compile(r"<\s*[a-zA-Z!/][^>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
# Zero-width, formatting and control characters survive NFKC but split or glue words invisibly.
_INVISIBLE = dict.fromkeys(
    [*map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"),
     *(cp for cp in (*range(0x20), *range(0x7F, 0xA0)) if not chr(cp).isspace())],
    None,
)
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOP_WORDS: dict[str, frozenset[str]] = {
    "en": _word_set("the and of to in is that for on with as was by at from it its are be has have will this an "
                    "said were which or not but their after than"),
    "de": _word_set("der die das und ist nicht mit von den des dem zu auf für ein eine im sich auch wird nach "
                    "bei aus wurde sind hat"),
    "fr": _word_set("le la les et des est une un du dans pour que qui pas sur au avec par ce sont ont été aux "
                    "plus cette"),
    "es": _word_set("el la los las y de que en un una es por con para del se al lo su como más pero sus ha fue "
                    "son"),
    "it": _word_set("il lo la gli le di che e un una è per con non del della sono nel alla come più ha anche "
                    "dei"),
    "nl": _word_set("de het een en van is dat op te in voor niet met zijn er aan ook bij door naar wordt heeft "
                    "werd"),
}
# Fewer hits than this, or a winner not clearly ahead of the runner-up, means "unsure": an honest ''.
_MIN_STOP_WORD_HITS = 3
_MIN_SHARE = 0.15
_MIN_LEAD = 1.5


class EmptyText(ValueError):
    """The text has no readable content once HTML, invisible characters and whitespace are removed."""


@dataclass(frozen=True, slots=True)
class NormalisedText:
    """Clean text for storage and scoring, its dedupe key and its language ('' when unknown)."""

    text: str
    content_hash: str
    language: str


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth += 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_ELEMENTS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(raw: str) -> str:
    """Visible text of an HTML fragment or document: tags removed, script/style content dropped, entities decoded."""
    extractor = _TextExtractor()
    extractor.feed(raw)
    extractor.close()
    return "".join(extractor.parts)


def detect_language(text: str) -> str:
    """Best-guess ISO 639-1 code from stop-word counts ('en', 'de', 'fr', 'es', 'it', 'nl'), or '' when unsure."""
    words = re.findall(r"[^\W\d_]+", text.casefold())
    if not words:
        return ""
    hits = {language: sum(word in stop_words for word in words) for language, stop_words in _STOP_WORDS.items()}
    ranked = sorted(hits.items(), key=lambda item: item[1], reverse=True)
    (best, best_hits), (_, runner_up) = ranked[0], ranked[1]
    if best_hits < _MIN_STOP_WORD_HITS or best_hits / len(words) < _MIN_SHARE or best_hits < _MIN_LEAD * runner_up:
        return ""
    return best


def content_hash(text: str) -> str:
    """sha256 hex of the case-folded text: equal for texts that differ only in case."""
    return hashlib.sha256(text.casefold().encode("utf-8")).hexdigest()


def normalise_text(raw: str, *, language: str | None = None) -> NormalisedText:
    """Turn raw pasted/fed text (plain or HTML) into clean single-spaced text with a dedupe hash and language.

    HTML is converted only when the text contains tags or character entities, so "profit < 5%" stays intact.
    A given `language` is kept (trimmed, lower-cased); otherwise a light stop-word heuristic guesses it.
    Raises EmptyText when nothing readable remains.
    """
    if not isinstance(raw, str):
        raise TypeError(f"text must be a str, got {type(raw).__name__}.")
    text = html_to_text(raw) if _LOOKS_LIKE_HTML.search(raw) else raw
    # NFKC folds full-width letters and non-breaking spaces into their plain forms before whitespace collapse.
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = " ".join(text.split())
    if not text:
        raise EmptyText("the text is empty once HTML and whitespace are removed; paste the article's text itself.")
    if language is not None and language.strip():
        tag = language.strip().lower().replace("_", "-")
        if not _LANGUAGE_TAG.match(tag):
            raise ValueError(f"language {language!r} is not a language code such as 'en' or 'pt-br'.")
    else:
        tag = detect_language(text)
    return NormalisedText(text=text, content_hash=content_hash(text), language=tag)
