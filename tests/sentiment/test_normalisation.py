"""Ingest normalisation: HTML, entities, whitespace, language and the dedupe hash."""

from __future__ import annotations

import hashlib

import pytest

from sentiment.normalisation import EmptyText, detect_language, normalise_text


def test_html_tags_scripts_and_styles_are_removed() -> None:
    raw = (
        "<html><head><title>Q3 update</title><style>p { color: red }</style></head><body>"
        "<script>var x = '<b>not text</b>';</script><p>Profit&nbsp;rose&nbsp;4%</p><p>at <b>Acme</b>&amp;Co</p>"
        "<ul><li>one</li><li>two</li></ul><br/>end</body></html>"
    )
    result = normalise_text(raw, language="en")
    assert result.text == "Q3 update Profit rose 4% at Acme&Co one two end"


def test_entities_are_unescaped_and_plain_text_kept() -> None:
    assert normalise_text("AT&amp;T &lt;up&gt; &#8364;5 &eacute;").text == "AT&T <up> €5 é"
    # No tags or entities: angle brackets in plain text are content, not markup.
    assert normalise_text("Margin < 5% and debt > equity").text == "Margin < 5% and debt > equity"


def test_whitespace_and_invisible_characters_collapse() -> None:
    raw = "  Shares\u00a0fell\t\n\n 3%\u200b today\x00 \u3000ｆｕｌｌ  "
    assert normalise_text(raw).text == "Shares fell 3% today full"


def test_hash_is_stable_case_insensitive_and_whitespace_insensitive() -> None:
    a = normalise_text("<p>Acme   raised guidance</p>")
    b = normalise_text("ACME raised\nGUIDANCE")
    c = normalise_text("Acme cut guidance")
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.content_hash == hashlib.sha256(b"acme raised guidance").hexdigest()
    assert a.text == "Acme raised guidance"  # case is kept in the text itself


def test_language_given_is_kept_and_normalised() -> None:
    assert normalise_text("Der Umsatz ist gestiegen", language=" DE ").language == "de"
    assert normalise_text("text", language="pt_BR").language == "pt-br"
    with pytest.raises(ValueError, match="language code"):
        normalise_text("text", language="english!")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The company said that revenue for the quarter was in line with its guidance.", "en"),
        ("Der Umsatz ist im dritten Quartal gestiegen und die Aktie wird nach oben bewertet.", "de"),
        ("Le chiffre d'affaires de la société est en hausse pour le trimestre et les actions sont stables.", "fr"),
        ("Las ventas de la empresa subieron en el trimestre y los resultados fueron buenos para el grupo.", "es"),
        ("ACME Q3 EPS 1.42 USD", ""),
        ("Profit rose", ""),
    ],
)
def test_language_detection(text: str, expected: str) -> None:
    assert detect_language(text) == expected
    assert normalise_text(text).language == expected


@pytest.mark.parametrize("raw", ["", "   \n\t", "<p> </p>", "<script>alert(1)</script>", "\u200b\u00a0"])
def test_empty_after_normalisation_is_a_clear_error(raw: str) -> None:
    with pytest.raises(EmptyText, match="empty"):
        normalise_text(raw)
