"""Entity extraction: cashtags, exchange tickers, watchlist tickers and aliases, overlaps, case, NER hook."""

from __future__ import annotations

import pytest

from sentiment.entities import EntityMatch, extract_entities

WATCHLIST = {
    "NWC": ["Northwind Capital", "Northwind Capital Group", "Northwind"],
    "KVMR": ["Kavemar Robotics", "Kavemar"],
    "ON": [],
    "GOOG": ["Alphabet"],
    "GOOGL": ["Alphabet", "GOOG Class A"],
}


def _found(text: str, **kwargs: object) -> list[tuple[str, str, str]]:
    matches = extract_entities(text=text, watchlist=kwargs.pop("watchlist", WATCHLIST), **kwargs)  # type: ignore[arg-type]
    for match in matches:
        assert text[match.start:match.end] == match.text
    return [(m.key, m.kind, m.text) for m in matches]


def test_cashtags_any_ticker_and_any_case() -> None:
    assert _found("Watching $aapl and $NWC, not $5m or US$20 or $$X.") == [
        ("AAPL", "cashtag", "$aapl"), ("NWC", "cashtag", "$NWC"),
    ]
    assert _found("$BRK.B rallied.") == [("BRK.B", "cashtag", "$BRK.B")]


def test_exchange_prefixed_tickers_cover_the_symbol() -> None:
    text = "Zorvex Mining (NYSE: ZVX) and Kavemar (nasdaq:KVMR) reported; (LSE: ABF.L) too."
    matches = extract_entities(text=text, watchlist=WATCHLIST)
    assert [(m.key, m.kind, m.text) for m in matches] == [
        ("ZVX", "ticker", "ZVX"), ("KVMR", "alias", "Kavemar"), ("KVMR", "ticker", "KVMR"),
        ("ABF.L", "ticker", "ABF.L"),
    ]
    assert text[matches[0].start - 6:matches[0].end + 1] == "NYSE: ZVX)"


def test_bare_tickers_only_from_watchlist_and_upper_case() -> None:
    assert _found("NWC rose while nwc and XYZ and Nwc did not; prices went ON and on.") == [
        ("NWC", "ticker", "NWC"), ("ON", "ticker", "ON"),
    ]
    assert _found("NWCX and ANWC are other words.") == []


def test_aliases_case_insensitive_on_word_boundaries() -> None:
    assert _found("NORTHWIND said kavemar robotics and Northwinds and Kavemarine are unrelated.") == [
        ("NWC", "alias", "NORTHWIND"), ("KVMR", "alias", "kavemar robotics"),
    ]
    assert _found("Northwind\n  Capital grew.") == [("NWC", "alias", "Northwind\n  Capital")]


def test_longest_match_wins_without_overlaps() -> None:
    text = "Northwind Capital Group (NASDAQ: NWC) and Northwind Capital said Northwind will merge."
    assert _found(text) == [
        ("NWC", "alias", "Northwind Capital Group"), ("NWC", "ticker", "NWC"),
        ("NWC", "alias", "Northwind Capital"), ("NWC", "alias", "Northwind"),
    ]


def test_shared_alias_goes_to_the_first_key_and_ticker_like_alias_is_case_sensitive() -> None:
    assert _found("Alphabet and GOOG Class A") == [("GOOG", "alias", "Alphabet"), ("GOOGL", "alias", "GOOG Class A")]


def test_ner_hook_adds_spans_and_resolves_watchlist_names() -> None:
    text = "Brelmar Foods signed a deal with Kavemar Robotics."

    def ner(value: str) -> list[tuple[int, int, str]]:
        assert value == text
        return [(0, 13, "ORG"), (33, 49, "ORG")]

    matches = extract_entities(text=text, watchlist=WATCHLIST, ner=ner)
    assert matches == [
        EntityMatch(key="Brelmar Foods", kind="ner", start=0, end=13, text="Brelmar Foods", label="ORG"),
        EntityMatch(key="KVMR", kind="alias", start=33, end=49, text="Kavemar Robotics"),
    ]


def test_ner_longer_span_wins_and_bad_spans_are_rejected() -> None:
    text = "Kavemar Robotics Europe cut jobs."
    # The NER span is longer than the alias inside it; its key is its own text since it names no watchlist entry.
    assert _found(text, ner=lambda _: [(0, 23, "ORG")]) == [
        ("Kavemar Robotics Europe", "ner", "Kavemar Robotics Europe"),
    ]
    with pytest.raises(ValueError, match="outside the text"):
        extract_entities(text=text, watchlist=WATCHLIST, ner=lambda _: [(5, 99, "ORG")])


def test_watchlist_shape_errors() -> None:
    with pytest.raises(TypeError, match="list of aliases"):
        extract_entities(text="x", watchlist={"NWC": "Northwind"})
    assert extract_entities(text="Nothing here.", watchlist={}) == []
