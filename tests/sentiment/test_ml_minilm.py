"""Slow: a short real fine-tune of the pretrained MiniLM on generated sentences, scored on held-out companies."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment.ml.demo import DemoRecipe, build_demo_model
from sentiment.ml.manifest import load_model
from sentiment.ml.scoring import score_texts


@pytest.mark.slow
def test_short_minilm_fine_tune_beats_chance_on_held_out_split(tmp_path: Path) -> None:
    recipe = DemoRecipe(n_train=480, n_eval=30, n_test=150, epochs=2, batch_size=16, lr=1.5e-4, max_length=40,
                        freeze_layers=3, seed=4)
    result = build_demo_model(out_root=tmp_path / "models", data_root=tmp_path / "data", recipe=recipe)
    test = result.metrics["test"]
    assert test["n"] == 150
    # Chance is 1/3 with balanced labels; the held-out split has unseen companies and unseen templates.
    assert test["accuracy"] >= 0.6, test
    assert result.manifest.demo and "Not investment advice" in result.manifest.intended_use
    loaded = load_model(model_dir=result.model_dir, expected_sha256=result.manifest.weights_sha256, device="cpu")
    score = score_texts(loaded=loaded, texts=["Shares of Qelvanor Steel plunged 18% after it cut its guidance."],
                        explain=True, ig_steps=16)[0]
    assert score.attributions and {a.text for a in score.attributions} >= {"plunged", "guidance"}
