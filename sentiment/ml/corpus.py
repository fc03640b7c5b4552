"""Generator of labelled financial sentences (negative / neutral / positive), written from our own templates.

Honest splits: every fictional company belongs to exactly one split (assigned by a stable hash of its ticker, so
the same holds for any seed), and per label a share of templates is held out for eval and another for test, so
held-out metrics measure generalisation to unseen companies and unseen phrasings, not memorisation.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sentiment.ml import corpus_templates as bank
from sentiment.ml.labelled_data import LABELS, LabelledText, write_labelled_csv

Split = Literal["train", "eval", "test"]
SPLITS: tuple[Split, ...] = ("train", "eval", "test")
# Share of company tickers per split (out of 100 hash buckets).
_COMPANY_BUCKETS: dict[str, range] = {"train": range(0, 80), "eval": range(80, 90), "test": range(90, 100)}
# Per label, this share of templates is seen only in eval, and the same share only in test.
HELD_OUT_TEMPLATE_SHARE = 0.15
# In eval/test, this share of sentences comes from the split's held-out templates.
HELD_OUT_SENTENCE_SHARE = 0.5
_COMPANIES_PER_SPLIT = {"train": 400, "eval": 80, "test": 80}


@dataclass(frozen=True, slots=True)
class Company:
    """A fictional listed company: full legal name, ticker, exchange and the aliases the news uses."""

    name: str
    ticker: str
    exchange: str
    aliases: tuple[str, ...]


def _stable_int(*parts: object) -> int:
    # hashlib, not hash(): Python salts str hashes per process and splits must never move between runs.
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}.")


def _ticker(root: str, sector: str) -> str:
    consonants = [c for c in root[1:].upper() if c in "BCDFGHJKLMNPQRSTVWXZ"]
    return (root[0].upper() + "".join(consonants[:2]) + sector[0]).ljust(3, "X")


def company_split(ticker: str) -> Split:
    """The split a company belongs to, from a stable hash of its ticker."""
    bucket = _stable_int("company", ticker) % 100
    return next(split for split in SPLITS if bucket in _COMPANY_BUCKETS[split])


def companies_for_split(*, split: Split, seed: int, count: int | None = None) -> list[Company]:
    """Fictional companies of one split; disjoint (names, aliases and tickers) from every other split."""
    _check_split(split)
    count = _COMPANIES_PER_SPLIT[split] if count is None else count
    rng = random.Random(_stable_int("companies", seed, split))
    companies: list[Company] = []
    seen_tickers: set[str] = set()
    for _ in range(count * 200):
        if len(companies) == count:
            break
        root = (rng.choice(bank.ONSETS) + rng.choice(bank.VOWELS) + rng.choice(bank.ONSETS)
                + rng.choice(bank.VOWELS) + rng.choice(bank.CODAS)).capitalize()
        sector = rng.choice(bank.SECTORS)
        ticker = _ticker(root, sector)
        if ticker in seen_tickers or company_split(ticker) != split:
            continue
        seen_tickers.add(ticker)
        suffix = rng.choice(bank.LEGAL_SUFFIXES)
        companies.append(Company(name=f"{root} {sector} {suffix}", ticker=ticker,
                                 exchange=rng.choice(bank.EXCHANGES), aliases=(f"{root} {sector}", root)))
    if len(companies) < count:
        raise ValueError(f"could only invent {len(companies)} of {count} companies for split {split!r}.")
    return companies


def template_split(*, label: str, template: str) -> Split | None:
    """Which split holds `template` out ('eval' or 'test'), or None when the template is shared by all splits."""
    ranked = sorted(bank.TEMPLATES[label], key=lambda t: _stable_int("template", t))
    held = max(1, round(len(ranked) * HELD_OUT_TEMPLATE_SHARE))
    position = ranked.index(template)
    if position < held:
        return "eval"
    if position < 2 * held:
        return "test"
    return None


def templates_for_split(*, label: str, split: Split) -> tuple[list[str], list[str]]:
    """(shared templates, templates held out for this split); train gets no held-out templates."""
    _check_split(split)
    shared = [t for t in bank.TEMPLATES[label] if template_split(label=label, template=t) is None]
    held = [t for t in bank.TEMPLATES[label] if split != "train" and template_split(label=label, template=t) == split]
    return shared, held


def _company_reference(rng: random.Random, company: Company) -> str:
    form = rng.random()
    if form < 0.30:
        return company.name
    if form < 0.55:
        return company.aliases[0]
    if form < 0.75:
        return company.aliases[1]
    if form < 0.90:
        return f"{company.aliases[0]} ({company.exchange}: {company.ticker})"
    return f"${company.ticker}"


def _money(rng: random.Random) -> str:
    symbol = rng.choice(("$", "$", "€", "£"))
    if rng.random() < 0.5:
        return f"{symbol}{rng.uniform(1.0, 9.9):.1f} billion"
    return f"{symbol}{rng.randrange(20, 990)} million"


def _slot_values(rng: random.Random, company: Company, others: list[Company]) -> dict[str, str]:
    other = rng.choice([c for c in others if c is not company] or [company])
    year = rng.randrange(2024, 2030)
    reference = _company_reference(rng, company)
    possessive_name = rng.choice((company.name, *company.aliases))
    percent = f"{rng.uniform(0.5, 35.0):.1f}"
    return {
        "co": reference,
        "co_pos": possessive_name + ("'" if possessive_name.endswith("s") else "'s"),
        "co2": rng.choice((other.name, other.aliases[0], other.aliases[1])),
        "pct": rng.choice((f"{percent}%", f"{percent} percent", f"{round(float(percent))}%")),
        "points": f"{rng.uniform(0.2, 4.0):.1f}",
        "amount": _money(rng),
        "eps": rng.choice((f"${rng.uniform(0.05, 4.5):.2f} a share", f"{rng.randrange(3, 99)} cents per share")),
        "dps": f"${rng.uniform(0.05, 1.5):.2f}",
        "price": f"${rng.uniform(4.0, 480.0):.2f}",
        "quarter": rng.choice((f"the {rng.choice(bank.QUARTERS)} quarter", f"Q{rng.randrange(1, 5)}",
                               f"the {rng.choice(bank.QUARTERS)} quarter of {year}", "the first half")),
        "year": rng.choice((str(year), f"fiscal {year}")),
        "later_year": str(year + rng.randrange(3, 12)),
        "date": rng.choice((f"{rng.choice(bank.MONTHS)} {rng.randrange(1, 29)}",
                            f"{rng.randrange(1, 29)} {rng.choice(bank.MONTHS)}")),
        "time": f"{rng.randrange(7, 12)}:{rng.choice(('00', '30'))} a.m. ET",
        "person": f"{rng.choice(bank.FIRST_NAMES)} {rng.choice(bank.LAST_NAMES)}",
        "person2": f"{rng.choice(bank.FIRST_NAMES)} {rng.choice(bank.LAST_NAMES)}",
        "role": rng.choice(bank.ROLES),
        "broker": rng.choice(bank.BROKERS),
        "agency": rng.choice(bank.AGENCIES),
        "auditor": rng.choice(bank.AUDITORS),
        "client": rng.choice(bank.CLIENTS),
        "product": rng.choice(bank.PRODUCTS),
        "city": rng.choice(bank.CITIES),
        "conference": rng.choice(bank.CONFERENCES),
        "headcount": f"{rng.randrange(1, 60) * 50:,}",
        "countries": str(rng.randrange(3, 40)),
        "up": rng.choice(bank.UP_VERBS),
        "down": rng.choice(bank.DOWN_VERBS),
    }


def _render(template: str, values: dict[str, str]) -> str:
    text = string.Formatter().vformat(template.replace("{co}'s", "{co_pos}"), (), values)
    return text[0].upper() + text[1:]


def generate_corpus(*, n: int, seed: int, split: Split) -> list[LabelledText]:
    """Generate `n` distinct labelled sentences for one split, balanced across labels (within one) and shuffled.

    The same (n, seed, split) always gives the same sentences.
    """
    _check_split(split)
    if n < 0:
        raise ValueError("n must be zero or positive.")
    rng = random.Random(_stable_int("corpus", seed, split))
    companies = companies_for_split(split=split, seed=seed)
    pools = {label: templates_for_split(label=label, split=split) for label in LABELS}
    rows: list[LabelledText] = []
    seen: set[str] = set()
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        shared, held = pools[label]
        for _ in range(100):
            use_held = bool(held) and rng.random() < HELD_OUT_SENTENCE_SHARE
            template = rng.choice(held if use_held else shared)
            text = _render(template, _slot_values(rng, rng.choice(companies), companies))
            if text not in seen:
                break
        else:
            raise ValueError(f"could not generate {n} distinct sentences for split {split!r}; ask for fewer.")
        seen.add(text)
        rows.append(LabelledText(text=text, label=label))
    rng.shuffle(rows)
    return rows


def describe_corpus(*, n_train: int, n_eval: int, n_test: int, seed: int) -> str:
    """One paragraph for a model card saying exactly what the generated data was."""
    n_templates = sum(len(t) for t in bank.TEMPLATES.values())
    return (
        f"Generated by sentiment.ml.corpus (seed {seed}): {n_train} train, {n_eval} eval and {n_test} test English "
        f"sentences about fictional companies, labels balanced over negative/neutral/positive, from {n_templates} "
        "project-written templates (earnings, guidance, dividends, buybacks, lawsuits, recalls, mergers, layoffs, "
        "ratings, hedged, mixed, negated and neutral boilerplate statements). Eval and test use companies that "
        f"never appear in training, and {HELD_OUT_SENTENCE_SHARE:.0%} of their sentences come from templates "
        f"held out of training ({HELD_OUT_TEMPLATE_SHARE:.0%} of templates per label for each split)."
    )


def write_splits(*, out_dir: Path | str, n_train: int, n_eval: int, n_test: int, seed: int) -> dict[str, Path]:
    """Write train.csv, eval.csv and test.csv (columns text,label) into `out_dir`; return their paths by split."""
    out_dir = Path(out_dir)
    sizes = {"train": n_train, "eval": n_eval, "test": n_test}
    return {
        split: write_labelled_csv(path=out_dir / f"{split}.csv",
                                  rows=generate_corpus(n=size, seed=seed, split=split))
        for split, size in sizes.items()
    }
