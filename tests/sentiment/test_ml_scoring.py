"""score_texts with a tiny random BERT: ordering, probabilities, attributions and their spans."""

from __future__ import annotations

import pytest
import torch

from sentiment.ml.attribution import integrated_gradients, merge_word_pieces
from sentiment.ml.manifest import LoadedSentimentModel, load_model
from sentiment.ml.scoring import score_texts
from sentiment.ml.tiny_model import build_tiny_model

TEXTS = [
    "Kavemar Robotics (NASDAQ: KVMR) didn't miss estimates; revenue rose 12.5% to $1.4 billion in the third quarter.",
    "Flat.",
    "Shares of $ZQX fell after the company warned on profits.",
    "Brelmar Foods will report results on March 3.",
    "",
    "Profit rose.",
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedSentimentModel:
    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(out_dir=path, seed=3)
    return load_model(model_dir=path, device="cpu")


def test_order_is_restored_after_length_sorting(loaded: LoadedSentimentModel) -> None:
    batched = score_texts(loaded=loaded, texts=TEXTS, batch_size=2)
    one_by_one = [score_texts(loaded=loaded, texts=[text], batch_size=1)[0] for text in TEXTS]
    assert len(batched) == len(TEXTS)
    for together, alone in zip(batched, one_by_one, strict=True):
        assert together.label == alone.label
        for label in loaded.labels:
            assert together.probabilities[label] == pytest.approx(alone.probabilities[label], abs=1e-5)
    # The random model must not give every text the same output, or the order check above would prove nothing.
    assert len({round(score.probabilities["positive"], 6) for score in batched}) > 3


def test_probabilities_sum_to_one_and_label_is_argmax(loaded: LoadedSentimentModel) -> None:
    for score in score_texts(loaded=loaded, texts=TEXTS, batch_size=4):
        assert list(score.probabilities) == ["negative", "neutral", "positive"]
        assert sum(score.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert score.label == max(score.probabilities, key=score.probabilities.get)
        assert score.attributions is None


def test_attribution_spans_are_words_of_the_original_text(loaded: LoadedSentimentModel) -> None:
    plain = score_texts(loaded=loaded, texts=TEXTS, batch_size=3, max_length=120)
    explained = score_texts(loaded=loaded, texts=TEXTS, batch_size=3, max_length=120, explain=True, ig_steps=8)
    for text, simple, score in zip(TEXTS, plain, explained, strict=True):
        assert score.label == simple.label
        assert score.attributions is not None
        for attribution in score.attributions:
            assert text[attribution.start:attribution.end] == attribution.text
        if text:
            assert max(abs(a.score) for a in score.attributions) == pytest.approx(1.0)
            assert [a.start for a in score.attributions] == sorted(a.start for a in score.attributions)
    words = [a.text for a in explained[0].attributions]
    # Word pieces (kavemar is not in the tiny vocabulary) and split punctuation are merged back into words.
    assert words[:2] == ["Kavemar", "Robotics"]
    assert "didn't" in words and "12.5%" in words and "$1.4" in words and "KVMR" in words
    assert explained[4].attributions == []


def test_truncated_text_gets_spans_for_the_scored_part_only(loaded: LoadedSentimentModel) -> None:
    text = TEXTS[0]
    score = score_texts(loaded=loaded, texts=[text], max_length=8, explain=True, ig_steps=4)[0]
    pieces = loaded.tokenizer(text, truncation=True, max_length=8, return_offsets_mapping=True)["offset_mapping"]
    scored_end = max(end for _, end in pieces)
    assert score.attributions and score.attributions[-1].end == scored_end < len(text)
    assert all(text[a.start:a.end] == a.text for a in score.attributions)


def test_integrated_gradients_satisfy_completeness(loaded: LoadedSentimentModel) -> None:
    encoded = loaded.tokenizer(TEXTS[2:4], padding=True, return_tensors="pt", return_special_tokens_mask=True)
    targets = torch.tensor([0, 2])
    raw = integrated_gradients(
        model=loaded.model, input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
        token_type_ids=encoded["token_type_ids"], special_mask=encoded["special_tokens_mask"], targets=targets,
        pad_token_id=loaded.tokenizer.pad_token_id, steps=64,
    )
    keep = encoded["special_tokens_mask"].bool() | ~encoded["attention_mask"].bool()
    baseline_ids = torch.where(keep, encoded["input_ids"], torch.zeros_like(encoded["input_ids"]))
    with torch.no_grad():
        extra = {"attention_mask": encoded["attention_mask"], "token_type_ids": encoded["token_type_ids"]}
        p_input = torch.softmax(loaded.model(input_ids=encoded["input_ids"], **extra).logits, -1)
        p_base = torch.softmax(loaded.model(input_ids=baseline_ids, **extra).logits, -1)
    expected = (p_input - p_base)[torch.arange(2), targets]
    assert raw.sum(dim=1) == pytest.approx(expected.tolist(), abs=2e-3)
    assert raw[keep].abs().sum() == 0


def test_explain_works_inside_callers_inference_mode(loaded: LoadedSentimentModel) -> None:
    with torch.inference_mode():
        score = score_texts(loaded=loaded, texts=["Profit rose."], explain=True, ig_steps=4)[0]
    assert score.attributions and score.attributions[0].text == "Profit"


def test_merge_word_pieces_sums_pieces_and_normalises() -> None:
    text = "Acme's profit fell 4.5%"
    offsets = [(0, 0), (0, 4), (4, 5), (5, 6), (7, 13), (14, 18), (19, 20), (20, 21), (21, 22), (22, 23), (0, 0)]
    scores = [9.0, 1.0, 0.5, 0.5, -1.0, -4.0, 0.5, 0.5, 0.5, 0.5, 9.0]
    merged = merge_word_pieces(text=text, offsets=offsets, scores=scores)
    assert [(a.text, a.start, a.end) for a in merged] == [("Acme's", 0, 6), ("profit", 7, 13), ("fell", 14, 18),
                                                          ("4.5%", 19, 23)]
    assert [a.score for a in merged] == pytest.approx([0.5, -0.25, -1.0, 0.5])


def test_rejects_a_single_string(loaded: LoadedSentimentModel) -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        score_texts(loaded=loaded, texts="Profit rose.")


def test_empty_input_gives_empty_output(loaded: LoadedSentimentModel) -> None:
    assert score_texts(loaded=loaded, texts=[]) == []
