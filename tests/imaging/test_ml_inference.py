"""Inference with tiny random-weight models: shapes, probabilities, determinism, series attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imaging.ml.architectures import SeriesModel, SliceClassifier, build_classifier, build_model, gradcam_layer_for
from imaging.ml.gradcam import gradcam
from imaging.ml.inference import predict_images, predict_series
from imaging.ml.manifest import LoadedModel, ModelManifest, load_model, save_model
from imaging.ml.preprocess import preprocess_images

torch.set_num_threads(2)
LABELS = ["lesion", "no_lesion", "other"]


def _tiny(tmp_path: Path, *, task: str = "image", seed: int = 0, name: str = "m",
          slice_head: bool = True) -> LoadedModel:
    torch.manual_seed(seed)
    params = {"d_model": 32, "layers": 1, "heads": 2, "slice_head": slice_head} if task == "series" else {}
    model = build_model(task=task, arch="tiny", num_classes=len(LABELS), arch_params=params)
    manifest = ModelManifest(name="tiny", version="v1", task=task, arch="tiny", labels=LABELS, input_size=64,
                             mean=[0.4] * 3, std=[0.25] * 3, gradcam_layer=gradcam_layer_for(task=task, arch="tiny"),
                             arch_params=params)
    save_model(model=model, manifest=manifest, out_dir=tmp_path / name)
    return load_model(model_dir=tmp_path / name)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((50, 70), dtype=np.float32), rng.random((128, 128, 3), dtype=np.float32),
            rng.random((64, 64), dtype=np.float32), rng.random((300, 200), dtype=np.float32)]


def test_probabilities_and_heatmap_shapes(tmp_path: Path) -> None:
    loaded = _tiny(tmp_path)
    images = _images()
    predictions = predict_images(loaded=loaded, images=images, batch_size=3)
    assert len(predictions) == len(images)
    for image, prediction in zip(images, predictions, strict=True):
        assert list(prediction.probabilities) == LABELS
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.predicted == max(prediction.probabilities, key=prediction.probabilities.get)
        assert prediction.heatmap is not None and prediction.heatmap.shape == image.shape[:2]
        assert prediction.heatmap.dtype == np.float32
        assert prediction.heatmap.min() >= 0.0 and prediction.heatmap.max() <= 1.0


def test_deterministic_given_seed(tmp_path: Path) -> None:
    a = predict_images(loaded=_tiny(tmp_path, seed=3, name="a"), images=_images())
    b = predict_images(loaded=_tiny(tmp_path, seed=3, name="b"), images=_images())
    c = predict_images(loaded=_tiny(tmp_path, seed=4, name="c"), images=_images())
    for x, y in zip(a, b, strict=True):
        assert x.probabilities == y.probabilities and np.array_equal(x.heatmap, y.heatmap)
    assert any(x.probabilities != z.probabilities for x, z in zip(a, c, strict=True))


def test_batching_and_explain_do_not_change_probabilities(tmp_path: Path) -> None:
    loaded = _tiny(tmp_path)
    explained = predict_images(loaded=loaded, images=_images(), batch_size=4)
    plain = predict_images(loaded=loaded, images=_images(), batch_size=1, explain=False)
    for x, y in zip(explained, plain, strict=True):
        assert y.heatmap is None and x.predicted == y.predicted
        assert np.allclose(list(x.probabilities.values()), list(y.probabilities.values()), atol=1e-5)


def test_target_label(tmp_path: Path) -> None:
    loaded = _tiny(tmp_path)
    images = _images()
    by_label = {label: predict_images(loaded=loaded, images=images, target_label=label) for label in LABELS}
    assert any(not np.allclose(by_label["lesion"][i].heatmap, by_label["other"][i].heatmap) for i in range(4))
    mixed = predict_images(loaded=loaded, images=images[:2], target_label=["other", "lesion"])
    assert np.allclose(mixed[0].heatmap, by_label["other"][0].heatmap, atol=1e-5)
    assert np.allclose(mixed[1].heatmap, by_label["lesion"][1].heatmap, atol=1e-5)
    with pytest.raises(ValueError, match="unknown target label"):
        predict_images(loaded=loaded, images=images, target_label="tumour")


def test_preprocess_normalises_per_manifest(tmp_path: Path) -> None:
    manifest = _tiny(tmp_path).manifest
    batch = preprocess_images(images=[np.full((10, 20), 0.4, np.float32), np.ones((5, 5, 3), np.float32)],
                              manifest=manifest)
    assert batch.shape == (2, 3, 64, 64)
    assert torch.allclose(batch[0], torch.zeros(1)) and torch.allclose(batch[1], torch.full((1,), 0.6 / 0.25))
    with pytest.raises(ValueError, match="shape"):
        preprocess_images(images=[np.zeros((4, 4, 2))], manifest=manifest)


@pytest.mark.parametrize("slice_head", [True, False], ids=["slice-head", "saved-before-slice-heads"])
def test_series_attention_and_heatmaps(tmp_path: Path, slice_head: bool) -> None:
    loaded = _tiny(tmp_path, task="series", slice_head=slice_head)
    assert (loaded.model.slice_head is not None) == slice_head
    rng = np.random.default_rng(0)
    slices = [rng.random((80, 90), dtype=np.float32) for _ in range(7)]
    prediction = predict_series(loaded=loaded, slices=slices, top_k=3)
    attention = np.asarray(prediction.slice_attention)
    assert attention.shape == (7,) and attention.sum() == pytest.approx(1.0, abs=1e-5) and (attention > 0).all()
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert sorted(prediction.slice_heatmaps) == sorted(np.argsort(-attention)[:3].tolist())
    assert all(h.shape == (80, 90) for h in prediction.slice_heatmaps.values())
    plain = predict_series(loaded=loaded, slices=slices, explain=False)
    assert plain.slice_heatmaps == {} and np.allclose(plain.slice_attention, attention, atol=1e-5)
    with pytest.raises(ValueError, match="series model"):
        predict_images(loaded=loaded, images=slices)


def test_series_slice_heatmaps_come_from_the_slice_head(tmp_path: Path) -> None:
    """Each attended slice is explained as the image classifier 'trunk + slice head' would explain it alone."""
    loaded = _tiny(tmp_path, task="series")
    rng = np.random.default_rng(1)
    slices = [rng.random((64, 64), dtype=np.float32) for _ in range(5)]
    prediction = predict_series(loaded=loaded, slices=slices, top_k=2, target_label="other")
    alone = gradcam(model=SliceClassifier(loaded.model), layer=loaded.manifest.gradcam_layer,
                    inputs=preprocess_images(images=slices, manifest=loaded.manifest),
                    targets=torch.full((5,), LABELS.index("other")))
    for index, heatmap in prediction.slice_heatmaps.items():
        np.testing.assert_allclose(heatmap, alone.heatmaps[index].numpy(), atol=1e-4)
    lesion = predict_series(loaded=loaded, slices=slices, top_k=2, target_label="lesion")
    assert any(not np.allclose(lesion.slice_heatmaps[i], prediction.slice_heatmaps[i]) for i in lesion.slice_heatmaps)
    # pooled slice logits: the attention-weighted mean of each slice's logits, with no gradient into the attention
    head = loaded.model.slice_head.requires_grad_(True)
    features, scores = torch.rand(2, 3, 32, requires_grad=True), torch.rand(2, 3, requires_grad=True)
    attention = torch.softmax(scores, dim=1)
    pooled = loaded.model.pooled_slice_logits(features, attention)
    torch.testing.assert_close(pooled, (attention[:, :, None] * head(features)).sum(dim=1))
    pooled.sum().backward()
    assert features.grad is not None and head.weight.grad is not None and scores.grad is None


def test_series_model_attention_respects_padding() -> None:
    torch.manual_seed(0)
    model = SeriesModel(arch="tiny", num_classes=2, d_model=32, layers=1, heads=2).eval()
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.inference_mode():
        logits, attention = model(torch.rand(2, 5, 3, 64, 64), padding)
    assert logits.shape == (2, 2) and attention.shape == (2, 5)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(2))
    assert attention[1, 3:].eq(0).all()


@pytest.mark.parametrize("arch", ["tiny", "resnet18", "resnet50"])
def test_build_classifier_shapes(arch: str) -> None:
    model = build_classifier(arch=arch, num_classes=4).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 4)
    model.get_submodule(gradcam_layer_for(task="image", arch=arch))


def test_resnet_gradcam_layer_is_the_last_stage_at_stride_16() -> None:
    """The explained layer is the last conv stage (faithful to the pooled head) and fine enough for small lesions."""
    model = build_classifier(arch="resnet18", num_classes=2).eval()
    layer = gradcam_layer_for(task="image", arch="resnet18")
    shapes = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape)))
    with torch.inference_mode():
        model(torch.rand(1, 3, 128, 128))
    handle.remove()
    assert layer == "layer4" and shapes == [(1, 512, 8, 8)]
