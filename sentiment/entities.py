"""Entity mentions in financial text: cashtags, exchange-prefixed tickers, watchlist tickers and aliases, NER.

Pure Python (no torch, no Django): runs in the web process during ingest and in workers after scoring. Spans
are character offsets into the text given, so `text[start:end] == match.text`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

EntityKind = Literal["cashtag", "ticker", "alias", "ner"]
NerHook = Callable[[str], Sequence[tuple[int, int, str]]]

# $AAPL, $brk.b; not $5m, not US$ (the lookbehind), at most 6 characters before an optional share-class suffix.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_EXCHANGE = re.compile(
    r"\b(?i:NASDAQ(?:GS|GM|CM)?|NYSE(?:\s+American|\s+Arca)?|NYSEARCA|AMEX|LSE|TSXV?|ASX|XETRA|Euronext(?:\s+[A-Z]\w+)?"
    r"|OTC(?:QX|QB)?|HKEX|SIX|CBOE|BATS|TSE|NSE|BSE|SGX|JSE)\s*:\s*([A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?)(?![\w])"
)
# An all-caps alias this short ("ON", "NWC") is a ticker: matching it case-insensitively would hit ordinary words.
_TICKER_LIKE = re.compile(r"^[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?$")
# When two matches are equally long, the more explicit kind wins.
_PRIORITY: dict[str, int] = {"cashtag": 0, "ticker": 1, "alias": 2, "ner": 3}


@dataclass(frozen=True, slots=True)
class EntityMatch:
    """One mention: `key` is the watchlist key (or the ticker / NER text when not in the watchlist)."""

    key: str
    kind: EntityKind
    start: int
    end: int
    text: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class _CompiledWatchlist:
    keys_by_upper: dict[str, str]
    ticker_pattern: re.Pattern[str] | None
    ticker_keys: dict[str, str]
    alias_pattern: re.Pattern[str] | None
    alias_keys: dict[str, str]


def _alias_regex(alias: str) -> str:
    # Any run of whitespace in the text matches a space in the alias ("Northwind\nCapital").
    return r"\s+".join(re.escape(part) for part in alias.split())


@lru_cache(maxsize=64)
def _compile(items: tuple[tuple[str, tuple[str, ...]], ...]) -> _CompiledWatchlist:
    keys_by_upper: dict[str, str] = {}
    ticker_keys: dict[str, str] = {}
    alias_keys: dict[str, str] = {}
    for key, aliases in items:
        keys_by_upper.setdefault(key.upper(), key)
        if _TICKER_LIKE.match(key) and len(key) >= 2:
            ticker_keys.setdefault(key, key)
        for alias in aliases:
            alias = " ".join(alias.split())
            if not alias:
                continue
            if _TICKER_LIKE.match(alias):
                if len(alias) >= 2:
                    ticker_keys.setdefault(alias, key)
            else:
                # First key wins for a shared alias (GOOG and GOOGL both say "Alphabet"): deterministic, no drop.
                alias_keys.setdefault(alias.casefold(), key)
    tickers = sorted(ticker_keys, key=len, reverse=True)
    aliases = sorted(alias_keys, key=len, reverse=True)
    ticker_pattern = (re.compile(r"(?<![\w$.])(" + "|".join(map(re.escape, tickers)) + r")(?![\w]|\.\w)")
                      if tickers else None)
    # A lookahead finds a candidate at every position (overlaps included); longest alternatives are tried first.
    alias_pattern = (re.compile(r"(?=(?<!\w)(" + "|".join(map(_alias_regex, aliases)) + r")(?!\w))", re.IGNORECASE)
                     if aliases else None)
    return _CompiledWatchlist(keys_by_upper=keys_by_upper, ticker_pattern=ticker_pattern, ticker_keys=ticker_keys,
                              alias_pattern=alias_pattern, alias_keys=alias_keys)


def _freeze(watchlist: Mapping[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if isinstance(watchlist, Mapping):
        for key, aliases in watchlist.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError("watchlist keys must be non-empty strings such as tickers.")
            if isinstance(aliases, str):
                raise TypeError(f"watchlist[{key!r}] must be a list of aliases, not a single string.")
        return tuple((key.strip(), tuple(aliases)) for key, aliases in watchlist.items())
    raise TypeError("watchlist must map entity keys to lists of aliases.")


def _candidates(text: str, compiled: _CompiledWatchlist, ner: NerHook | None) -> list[EntityMatch]:
    found: list[EntityMatch] = []

    def add(key: str, kind: EntityKind, start: int, end: int, label: str = "") -> None:
        found.append(EntityMatch(key=key, kind=kind, start=start, end=end, text=text[start:end], label=label))

    for match in _CASHTAG.finditer(text):
        symbol = match.group(1).upper()
        add(compiled.keys_by_upper.get(symbol, symbol), "cashtag", match.start(), match.end())
    for match in _EXCHANGE.finditer(text):
        symbol = match.group(1)
        add(compiled.keys_by_upper.get(symbol, symbol), "ticker", match.start(1), match.end(1))
    if compiled.ticker_pattern is not None:
        for match in compiled.ticker_pattern.finditer(text):
            add(compiled.ticker_keys[match.group(1)], "ticker", match.start(1), match.end(1))
    if compiled.alias_pattern is not None:
        for match in compiled.alias_pattern.finditer(text):
            alias = " ".join(match.group(1).split()).casefold()
            add(compiled.alias_keys[alias], "alias", match.start(1), match.end(1))
    for start, end, label in (ner(text) if ner is not None else ()):
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise ValueError(f"NER hook returned span ({start}, {end}) outside the text of length {len(text)}.")
        span = text[start:end]
        normalised = " ".join(span.split())
        key = (compiled.alias_keys.get(normalised.casefold()) or compiled.ticker_keys.get(normalised)
               or compiled.keys_by_upper.get(normalised.upper()) or normalised)
        add(key, "ner", start, end, label)
    return found


def extract_entities(*, text: str, watchlist: Mapping[str, Sequence[str]],
                     ner: NerHook | None = None) -> list[EntityMatch]:
    """Find entity mentions in `text`, sorted by position, without overlaps.

    - cashtags (`$AAPL`, any case): key is the upper-case ticker, in the watchlist or not;
    - exchange-prefixed tickers (`(NASDAQ: NWC)`): the span covers the ticker only;
    - bare tickers: only watchlist keys (or all-caps aliases) written in upper case, at least two characters;
    - company names and aliases: case-insensitive, on word boundaries, any whitespace between words;
    - `ner(text) -> [(start, end, label)]`: optional model hook; spans naming a watchlist entity get its key.

    Where matches overlap, the longest wins; equal lengths prefer cashtag, ticker, alias, then NER.
    """
    compiled = _compile(_freeze(watchlist))
    candidates = _candidates(text, compiled, ner)
    candidates.sort(key=lambda m: (m.start - m.end, _PRIORITY[m.kind], m.start))
    taken: list[EntityMatch] = []
    for candidate in candidates:
        if all(candidate.end <= kept.start or candidate.start >= kept.end for kept in taken):
            taken.append(candidate)
    return sorted(taken, key=lambda m: m.start)
