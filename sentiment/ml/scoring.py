"""Batched sentiment scoring with optional per-word Integrated Gradients explanations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from sentiment.ml.attribution import TokenAttribution, integrated_gradients, merge_word_pieces
from sentiment.ml.manifest import LoadedSentimentModel
from sentiment.ml.runtime import autocast_for

DEFAULT_IG_STEPS = 32

__all__ = ["DEFAULT_IG_STEPS", "TextScore", "TokenAttribution", "score_texts"]


@dataclass(frozen=True, slots=True)
class TextScore:
    """Prediction for one text: label, probability per label and, when explained, word attributions."""

    label: str
    probabilities: dict[str, float]
    attributions: list[TokenAttribution] | None = None


@dataclass(frozen=True, slots=True)
class _Batch:
    indices: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    special_mask: torch.Tensor


def _pad(rows: Sequence[Sequence[int]], width: int, value: int) -> torch.Tensor:
    return torch.tensor([list(row) + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def _batches(loaded: LoadedSentimentModel, encoded: dict, order: list[int], batch_size: int) -> list[_Batch]:
    pad_id = loaded.tokenizer.pad_token_id or 0
    with_types = "token_type_ids" in loaded.tokenizer.model_input_names
    batches = []
    for first in range(0, len(order), batch_size):
        indices = order[first:first + batch_size]
        ids = [encoded["input_ids"][i] for i in indices]
        width = max(len(row) for row in ids)
        batches.append(_Batch(
            indices=indices,
            input_ids=_pad(ids, width, pad_id).to(loaded.device),
            attention_mask=_pad([[1] * len(row) for row in ids], width, 0).to(loaded.device),
            token_type_ids=_pad([[0] * len(row) for row in ids], width, 0).to(loaded.device) if with_types else None,
            special_mask=_pad([encoded["special_tokens_mask"][i] for i in indices], width, 1).to(loaded.device),
        ))
    return batches


def _probabilities(loaded: LoadedSentimentModel, batch: _Batch) -> torch.Tensor:
    extra = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
    with torch.inference_mode(), autocast_for(loaded.device):
        logits = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **extra).logits
    return torch.softmax(logits.float(), dim=-1).cpu()


def score_texts(*, loaded: LoadedSentimentModel, texts: Sequence[str], batch_size: int = 32,
                max_length: int | None = None, explain: bool = False,
                ig_steps: int = DEFAULT_IG_STEPS) -> list[TextScore]:
    """Score `texts` with a loaded model; results are in the order of `texts`.

    Texts are tokenised once, sorted by token length into batches (less padding) and restored to input order.
    Texts longer than `max_length` tokens (default: the manifest's) are truncated and scored on their start.
    With `explain`, each result carries Integrated Gradients attributions for its predicted label, merged into
    words with character spans into the original text (only the scored part when truncated).
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string.")
    if batch_size < 1 or ig_steps < 1:
        raise ValueError("batch_size and ig_steps must be at least 1.")
    if explain and not loaded.tokenizer.is_fast:
        raise ValueError("explanations need a fast tokenizer (character offsets); re-save the model with one.")
    texts = list(texts)
    if not texts:
        return []
    labels = loaded.labels
    encoded = loaded.tokenizer(texts, truncation=True, max_length=max_length or loaded.manifest.max_length,
                               return_special_tokens_mask=True, return_offsets_mapping=explain)
    order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
    results: list[TextScore | None] = [None] * len(texts)
    for batch in _batches(loaded, encoded, order, batch_size):
        probabilities = _probabilities(loaded, batch)
        predicted = probabilities.argmax(dim=-1)
        token_scores = None
        if explain:
            token_scores = integrated_gradients(
                model=loaded.model, input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                token_type_ids=batch.token_type_ids, special_mask=batch.special_mask,
                targets=predicted.to(loaded.device), pad_token_id=loaded.tokenizer.pad_token_id or 0, steps=ig_steps,
            ).cpu()
        for row, index in enumerate(batch.indices):
            attributions = None
            if token_scores is not None:
                length = len(encoded["input_ids"][index])
                attributions = merge_word_pieces(text=texts[index], offsets=encoded["offset_mapping"][index],
                                                 scores=token_scores[row, :length].tolist())
            results[index] = TextScore(
                label=labels[int(predicted[row])],
                probabilities={label: float(p) for label, p in zip(labels, probabilities[row].tolist(), strict=True)},
                attributions=attributions,
            )
    # Every index appears in exactly one batch, so no slot is left None.
    return cast(list[TextScore], results)
