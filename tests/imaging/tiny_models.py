"""Tiny random-weight models saved through the ml package's real save path: fast tests, no GPU, no training."""

from __future__ import annotations

from pathlib import Path

LABELS = ["lesion", "no_lesion"]


def save_tiny(root: Path, *, task: str, name: str) -> Path:
    import torch

    from imaging.ml.architectures import build_model, gradcam_layer_for
    from imaging.ml.manifest import DEMO_INTENDED_USE, ModelManifest, save_model

    torch.manual_seed(0)
    arch_params = {"d_model": 32, "layers": 1, "heads": 2, "slice_head": True} if task == "series" else {}
    model = build_model(task=task, arch="tiny", num_classes=2, arch_params=arch_params).eval()
    manifest = ModelManifest(
        name=name, version="v1", task=task, arch="tiny", labels=LABELS, input_size=64, mean=[0.5] * 3,
        std=[0.25] * 3, gradcam_layer=gradcam_layer_for(task=task, arch="tiny"), demo=True,
        intended_use=DEMO_INTENDED_USE, arch_params=arch_params,
        metrics={"accuracy": 0.5, "roc_auc": 0.5, "n": 10},
        training_data={"train_csv": "phantoms.csv", "train_counts": {"lesion": 5, "no_lesion": 5}})
    out = root / name / "v1"
    save_model(model=model, manifest=manifest, out_dir=out)
    return out


def save_tiny_models(root: Path) -> dict[str, Path]:
    return {"root": root, "image": save_tiny(root, task="image", name="tiny-image"),
            "series": save_tiny(root, task="series", name="tiny-series")}
