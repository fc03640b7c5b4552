"""Build the demo imaging models from phantoms we generate: a ResNet-18 image classifier and a series model.

Sized to train in about 3 minutes on 2 CPU cores (seconds on a GPU). The series model starts from the image
model's trunk (same arch and input size, frozen) and learns only the Transformer across slices and the heads,
which is what makes it affordable on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from imaging.ml.datasets import PixelLoader
from imaging.ml.phantoms import write_image_dataset, write_series_dataset
from imaging.ml.train import TrainConfig, TrainResult, train

IMAGE_MODEL_NAME = "demo-lesion-resnet18"
SERIES_MODEL_NAME = "demo-lesion-series"


@dataclass(frozen=True)
class DemoPlan:
    """Dataset sizes and training settings of the demo build (tests shrink it)."""

    image_train: int = 320
    image_eval: int = 200
    series_train: int = 96
    series_eval: int = 60
    slices: int = 8
    phantom_size: int = 128
    image_config: TrainConfig = TrainConfig(
        train_csv="", eval_csv="", name=IMAGE_MODEL_NAME, arch="resnet18", input_size=128, epochs=6, batch_size=32,
        lr=2e-3, seed=0, task="image", demo=True,
    )
    series_config: TrainConfig = TrainConfig(
        train_csv="", eval_csv="", name=SERIES_MODEL_NAME, arch="resnet18", input_size=128, epochs=12, batch_size=8,
        lr=1e-3, seed=0, task="series", demo=True, freeze_backbone=True,
    )


def build_demo_models(*, out_root: str | Path, data_root: str | Path, progress: Callable[[str], None] | None = None,
                      load_pixels: PixelLoader | None = None, plan: DemoPlan | None = None) -> list[TrainResult]:
    """Write phantom train/eval datasets under `data_root` and train both demo models under `out_root`.

    Returns [image result, series result]; both manifests are flagged demo with the not-for-clinical-use note.
    `load_pixels` defaults to imaging.decoding.load_pixels (pure Python, no Django).
    """
    if load_pixels is None:
        from imaging.decoding import load_pixels as decode

        load_pixels = decode
    plan = plan or DemoPlan()
    report = progress or (lambda _message: None)
    data = Path(data_root)
    report("writing phantom datasets")
    image_train = write_image_dataset(out_dir=data / "image_train", n=plan.image_train, size=plan.phantom_size, seed=1)
    image_eval = write_image_dataset(out_dir=data / "image_eval", n=plan.image_eval, size=plan.phantom_size, seed=2)
    series_train = write_series_dataset(out_dir=data / "series_train", n=plan.series_train, slices=plan.slices,
                                        size=plan.phantom_size, seed=3)
    series_eval = write_series_dataset(out_dir=data / "series_eval", n=plan.series_eval, slices=plan.slices,
                                       size=plan.phantom_size, seed=4)
    image = train(config=replace(plan.image_config, train_csv=image_train, eval_csv=image_eval, out_root=out_root),
                  load_pixels=load_pixels, progress=report)
    series = train(
        config=replace(plan.series_config, train_csv=series_train, eval_csv=series_eval, out_root=out_root,
                       init_backbone_from=image.model_dir),
        load_pixels=load_pixels, progress=report,
    )
    return [image, series]
