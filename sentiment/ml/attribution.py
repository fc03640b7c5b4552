"""Token attributions for sentiment predictions: Integrated Gradients over the embeddings, merged into words."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from captum.attr import LayerIntegratedGradients
from transformers import PreTrainedModel

# A "word" for highlighting: keeps 12.5%, $AAPL, didn't, non-binding and 1,200 whole; other punctuation stands alone.
_WORD = re.compile(r"[$€£]?\w+(?:['’.,&\-]\w+)*%?")
# Upper bound on expanded (example x step) rows per forward pass, to bound memory for long batches.
_MAX_IG_ROWS = 256


@dataclass(frozen=True, slots=True)
class TokenAttribution:
    """How much one word of the original text pushed the model towards its predicted label.

    `start`/`end` are character offsets into the scored text and `text == original[start:end]`. Scores are
    normalised per text so the largest |score| is 1; positive supports the predicted label, negative opposes it.
    """

    text: str
    start: int
    end: int
    score: float


def embeddings_layer(model: PreTrainedModel) -> torch.nn.Module:
    """The layer IG interpolates over: the whole embeddings block of BERT-family models, else the word embeddings."""
    embeddings = getattr(model.base_model, "embeddings", None)
    return embeddings if isinstance(embeddings, torch.nn.Module) else model.get_input_embeddings()


def integrated_gradients(*, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         token_type_ids: torch.Tensor | None, special_mask: torch.Tensor, targets: torch.Tensor,
                         pad_token_id: int, steps: int) -> torch.Tensor:
    """Per-token IG attributions (batch x length) towards `targets`, zero on special and padding positions.

    The baseline replaces every ordinary token by [PAD] and keeps [CLS]/[SEP], so attributions measure what the
    words contribute beyond the sentence frame. The whole batch is attributed in one call.
    """

    def forward(ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if types is None else {"token_type_ids": types}
        logits = model(input_ids=ids, attention_mask=mask, **extra).logits
        return torch.softmax(logits.float(), dim=-1)

    keep = special_mask.bool() | ~attention_mask.bool()
    baselines = torch.where(keep, input_ids, torch.full_like(input_ids, pad_token_id))
    extra_args = (attention_mask,) if token_type_ids is None else (attention_mask, token_type_ids)
    batch = input_ids.shape[0]
    explainer = LayerIntegratedGradients(forward, embeddings_layer(model))
    # inference_mode(False): callers may be inside inference mode, where autograd cannot run at all.
    with torch.inference_mode(False), torch.enable_grad():
        attributions = explainer.attribute(
            inputs=input_ids,
            baselines=baselines,
            target=targets,
            additional_forward_args=extra_args,
            n_steps=steps,
            internal_batch_size=max(batch, min(batch * steps, _MAX_IG_ROWS)),
        )
    per_token = attributions.sum(dim=-1).detach().float()
    return per_token.masked_fill(keep, 0.0)


def merge_word_pieces(*, text: str, offsets: Sequence[tuple[int, int]],
                      scores: Sequence[float]) -> list[TokenAttribution]:
    """Sum word-piece scores into words of `text` (by character offsets) and normalise to max |score| = 1.

    Pieces with empty offsets (special tokens) are skipped; a word cut by truncation spans only its scored pieces.
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    word_starts = [start for start, _ in words]
    groups: dict[tuple[str, int], list[float]] = {}
    for (start, end), score in zip(offsets, scores, strict=True):
        if end <= start:
            continue
        index = bisect.bisect_right(word_starts, start) - 1
        key = ("word", index) if index >= 0 and start < words[index][1] else ("piece", start)
        group = groups.get(key)
        if group is None:
            groups[key] = [start, end, float(score)]
        else:
            group[0], group[1], group[2] = min(group[0], start), max(group[1], end), group[2] + float(score)
    merged = sorted(groups.values(), key=lambda g: g[0])
    largest = max((abs(g[2]) for g in merged), default=0.0)
    scale = 1.0 / largest if largest > 0 else 0.0
    return [TokenAttribution(text=text[int(s):int(e)], start=int(s), end=int(e), score=score * scale)
            for s, e, score in merged]
