"""Tiny random-weight BERT sentiment models for tests and smoke runs (seconds to build, no download).

The model is saved with the real save_model and loads through the real from_pretrained code path, so a test
using it exercises the same loading, checksum and scoring code as production.
"""

from __future__ import annotations

import re
import string
import tempfile
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from sentiment.ml import corpus_templates
from sentiment.ml.labelled_data import LABELS
from sentiment.ml.manifest import SentimentManifest, save_model

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Words the corpus generator adds outside the templates (figures, quarters, dates).
_EXTRA_WORDS = ("million billion percent cents share per a.m. et quarter fiscal first half",)


def tiny_vocabulary() -> list[str]:
    """Special tokens, single characters, their ## continuations and the words of the corpus generator.

    Every lower-case ASCII word therefore tokenises (into pieces when it is not a whole entry).
    """
    characters = string.ascii_lowercase + string.digits
    phrases = [*_EXTRA_WORDS, *(text for templates in corpus_templates.TEMPLATES.values() for text in templates)]
    phrases += [text for value in vars(corpus_templates).values() if isinstance(value, tuple)
                for text in value if isinstance(text, str)]
    words = sorted({word for text in phrases for word in re.findall(r"[a-z]+", text.lower())} - set(characters))
    return [*SPECIAL_TOKENS, *characters, *string.punctuation, *(f"##{c}" for c in characters), *words]


def build_tiny_tokenizer(*, out_dir: Path | str) -> BertTokenizerFast:
    """Write vocab.txt into `out_dir` and load a fast BERT tokenizer from it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(tiny_vocabulary()) + "\n", encoding="utf-8")
    return BertTokenizerFast.from_pretrained(out_dir, do_lower_case=True)


def build_tiny_model(*, out_dir: Path | str, seed: int = 0, hidden_size: int = 32, layers: int = 2,
                     max_length: int = 48) -> SentimentManifest:
    """Build, save and return the manifest of a random-weight BERT classifier (hidden 32, 2 layers, 2 heads)."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as vocab_dir:
        tokenizer = build_tiny_tokenizer(out_dir=vocab_dir)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden_size * 2, max_position_embeddings=128, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config)
    manifest = SentimentManifest(
        name="tiny-test", version=f"seed-{seed}", base_model="random BertConfig(hidden 32, 2 layers)",
        max_length=max_length, training_data="none: random weights", intended_use="tests only; predictions are noise",
        demo=True,
    )
    return save_model(model=model, tokenizer=tokenizer, manifest=manifest, out_dir=out_dir)
