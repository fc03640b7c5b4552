"""Generated corpus: balance, determinism, honest splits, CSV round trip."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from sentiment.ml import corpus_templates
from sentiment.ml.corpus import (
    SPLITS,
    companies_for_split,
    generate_corpus,
    template_split,
    templates_for_split,
    write_splits,
)
from sentiment.ml.labelled_data import LABELS, DatasetError, read_labelled_csv


def _company_terms(split: str) -> set[str]:
    terms: set[str] = set()
    for company in companies_for_split(split=split, seed=0):
        terms |= {company.name, company.ticker, *company.aliases}
    return terms


def test_labels_are_balanced_and_texts_distinct() -> None:
    rows = generate_corpus(n=301, seed=1, split="train")
    counts = Counter(row.label for row in rows)
    assert set(counts) == set(LABELS)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len({row.text for row in rows}) == len(rows)
    assert all("{" not in row.text and "}" not in row.text for row in rows)


def test_same_seed_same_corpus_and_other_seed_differs() -> None:
    assert generate_corpus(n=60, seed=5, split="eval") == generate_corpus(n=60, seed=5, split="eval")
    assert generate_corpus(n=60, seed=5, split="eval") != generate_corpus(n=60, seed=6, split="eval")


@pytest.mark.parametrize("seed_a,seed_b", [(0, 0), (0, 7)])
def test_companies_are_disjoint_between_splits(seed_a: int, seed_b: int) -> None:
    train = {c.ticker for c in companies_for_split(split="train", seed=seed_a)}
    for split in ("eval", "test"):
        held = companies_for_split(split=split, seed=seed_b)
        assert not train & {c.ticker for c in held}
        assert not {c.aliases[-1] for c in companies_for_split(split="train", seed=seed_a)} & {
            c.aliases[-1] for c in held
        }
    assert not _company_terms("eval") & _company_terms("test")


def test_held_out_companies_never_appear_in_training_text() -> None:
    train_text = " ".join(row.text for row in generate_corpus(n=600, seed=0, split="train"))
    test_names = {c.aliases[-1] for c in companies_for_split(split="test", seed=0)}
    assert not [name for name in test_names if name in train_text]


def test_held_out_templates_never_train_but_appear_in_eval_and_test() -> None:
    for label in LABELS:
        shared, held_train = templates_for_split(label=label, split="train")
        assert held_train == []
        _, held_eval = templates_for_split(label=label, split="eval")
        _, held_test = templates_for_split(label=label, split="test")
        assert held_eval and held_test and not set(held_eval) & set(held_test)
        assert not (set(held_eval) | set(held_test)) & set(shared)
        assert len(shared) + len(held_eval) + len(held_test) == len(corpus_templates.TEMPLATES[label])


def _distinctive_fragment(template: str, others: list[str]) -> str | None:
    fragments = sorted(re.split(r"\{[a-z0-9_]+\}(?:'s)?", template), key=len, reverse=True)
    return next((f for f in fragments if len(f) > 12 and not any(f in other for other in others)), None)


def test_held_out_template_phrasing_reaches_eval_only() -> None:
    label = "positive"
    shared, held = templates_for_split(label=label, split="eval")
    everything_else = [t for t in corpus_templates.TEMPLATES[label] if t not in held]
    pairs = [(t, _distinctive_fragment(t, everything_else)) for t in held]
    template, fragment = next((t, f) for t, f in pairs if f)
    assert template_split(label=label, template=template) == "eval"
    eval_text = [row.text for row in generate_corpus(n=900, seed=0, split="eval")]
    train_text = [row.text for row in generate_corpus(n=900, seed=0, split="train")]
    assert any(fragment in text for text in eval_text)
    assert not any(fragment in text for text in train_text)


def test_write_splits_writes_valid_csvs(tmp_path) -> None:
    paths = write_splits(out_dir=tmp_path, n_train=30, n_eval=9, n_test=12, seed=3)
    assert set(paths) == set(SPLITS)
    rows = {split: read_labelled_csv(path=path) for split, path in paths.items()}
    assert [len(rows[s]) for s in SPLITS] == [30, 9, 12]
    assert rows["train"] == generate_corpus(n=30, seed=3, split="train")


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        generate_corpus(n=3, seed=0, split="dev")  # type: ignore[arg-type]


def test_csv_validation_reports_every_problem_with_line_numbers(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('text,label\nShares rose,positive\n"",neutral\nProfit fell,postive\nFlat,Neutral\n',
                    encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        read_labelled_csv(path=path)
    message = str(error.value)
    assert "bad.csv" in message and "line 4: 'postive'" in message and "empty text at line(s) 3" in message


def test_csv_validation_names_missing_columns(tmp_path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("sentence,label\nShares rose,positive\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing column\\(s\\) text"):
        read_labelled_csv(path=path)
