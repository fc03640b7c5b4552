"""Train an image or series classifier from labelled CSVs, evaluate it and save a versioned, checksummed model."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imaging.ml.architectures import SERIES_PREFIX, arch_spec, build_model, gradcam_layer_for
from imaging.ml.datasets import LabelledDataset, PixelLoader, check_training_pair, load_row_pixels, read_dataset_csv
from imaging.ml.evaluate import evaluate_dataset
from imaging.ml.manifest import DEMO_INTENDED_USE, LoadedModel, ModelManifest, load_model, save_model
from imaging.ml.preprocess import normalise, resize_images
from imaging.ml.runtime import autocast_dtype, select_device

AUGMENTATION = "random horizontal/vertical flips, brightness x[0.9, 1.1] and offset +-0.05"
FROZEN_AUGMENTATION = "random 180-degree rotation (trunk features cached for both views)"


@dataclass(frozen=True)
class TrainConfig:
    """What to train on, how, and where to save it (under `out_root/<name>/<version>/`)."""

    train_csv: str | Path
    eval_csv: str | Path
    name: str
    arch: str = "resnet18"
    input_size: int = 96
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    task: str = "image"  # 'image' | 'series'
    out_root: str | Path = "var/models"
    demo: bool = False
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    weight_decay: float = 1e-4
    cpu_threads: int | None = None  # set torch's CPU thread count for the run (shared machines)
    intended_use: str = ""
    arch_params: dict[str, Any] = field(default_factory=dict)
    init_backbone_from: str | Path | None = None  # a saved model dir (same arch/input size) to start the trunk from
    freeze_backbone: bool = False  # series only: train just the Transformer and heads on the initialised trunk


@dataclass(frozen=True)
class TrainResult:
    """The saved manifest, its directory and the held-out metrics."""

    manifest: ModelManifest
    model_dir: Path
    metrics: dict[str, Any]
    seconds: float


def _validate_config(config: TrainConfig) -> None:
    arch_spec(config.arch)
    if config.task not in ("image", "series"):
        raise ValueError(f"unknown task '{config.task}'; expected 'image' or 'series'")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.name):
        raise ValueError(f"model name '{config.name}' may only contain letters, digits, '_', '.' and '-'")
    if config.input_size < 32 or config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise ValueError("input_size must be >= 32 and epochs, batch_size and lr positive")
    if config.freeze_backbone and (config.task != "series" or not config.init_backbone_from):
        raise ValueError("freeze_backbone needs task 'series' and init_backbone_from (a trained trunk to keep)")


def _load_source(config: TrainConfig) -> LoadedModel | None:
    """The model whose trunk initialises this one; it must match arch and input size (and lends its mean/std)."""
    if not config.init_backbone_from:
        return None
    source = load_model(model_dir=config.init_backbone_from, device="cpu")
    found = (source.manifest.arch, source.manifest.input_size)
    if found != (config.arch, config.input_size):
        raise ValueError(f"init_backbone_from {config.init_backbone_from} is {found[0]} at {found[1]} px; "
                         f"this run needs {config.arch} at {config.input_size} px")
    return source


def _arch_params(config: TrainConfig) -> dict[str, Any]:
    """Series models are trained with a slice head (it explains the slices) unless the caller says otherwise."""
    return {"slice_head": True, **config.arch_params} if config.task == "series" else dict(config.arch_params)


def _copy_backbone(*, source: LoadedModel, model: nn.Module, task: str, labels: list[str]) -> None:
    state = source.model.state_dict()
    if source.manifest.task == "series":
        state = {k.removeprefix(SERIES_PREFIX): v for k, v in state.items() if k.startswith(SERIES_PREFIX)}
    trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the class head never transfers...
    if task == "series":
        model.backbone.load_state_dict(trunk)
        if model.slice_head is not None and source.manifest.task == "image" and source.manifest.labels == labels:
            # ...except onto the slice head, which asks the image model's question of one slice: start from its answer
            head = {k.removeprefix("fc."): v for k, v in state.items() if k.startswith("fc.")}
            model.slice_head.load_state_dict(head)
    else:
        missing, unexpected = model.load_state_dict(trunk, strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise ValueError(f"cannot initialise from {source.manifest.name}: {missing + unexpected}")


def _load_tensors(dataset: LabelledDataset, *, input_size: int, load_pixels: PixelLoader,
                  labels: list[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Decode and resize once: per row a (3, S, S) image or (D, 3, S, S) series tensor in [0, 1]."""
    tensors = []
    for row in dataset.rows:
        pixels = load_row_pixels(dataset=dataset, row=row, load_pixels=load_pixels)
        batch = resize_images(images=pixels, input_size=input_size)
        tensors.append(batch if dataset.task == "series" else batch[0])
    targets = torch.tensor([labels.index(row.label) for row in dataset.rows], dtype=torch.long)
    return tensors, targets


def _channel_stats(tensors: list[torch.Tensor]) -> tuple[list[float], list[float]]:
    pixels = torch.cat([t.reshape(-1, 3, t.shape[-2] * t.shape[-1]).transpose(0, 1).reshape(3, -1) for t in tensors], 1)
    return pixels.mean(dim=1).tolist(), pixels.std(dim=1).clamp_min(1e-3).tolist()


def _collate(items: list[torch.Tensor], *, series: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack images; pad series to the longest one and return the padding mask (None when nothing is padded)."""
    if not series:
        return torch.stack(items), None
    depth = max(item.shape[0] for item in items)
    if all(item.shape[0] == depth for item in items):
        return torch.stack(items), None
    batch = torch.zeros(len(items), depth, *items[0].shape[1:])
    padding = torch.ones(len(items), depth, dtype=torch.bool)
    for i, item in enumerate(items):
        batch[i, : item.shape[0]], padding[i, : item.shape[0]] = item, False
    return batch, padding


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light, label-preserving augmentation on [0, 1] pixels; a series gets the same flip on all its slices."""
    n = batch.shape[0]
    view = (n,) + (1,) * (batch.dim() - 1)
    hflip = torch.rand(n, generator=generator).view(view) < 0.5
    vflip = torch.rand(n, generator=generator).view(view) < 0.5
    batch = torch.where(hflip, batch.flip(-1), batch)
    batch = torch.where(vflip, batch.flip(-2), batch)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator).view(view)
    offset = 0.1 * torch.rand(n, generator=generator).view(view) - 0.05
    return (batch * scale + offset).clamp(0.0, 1.0)


def _cache_trunk_features(*, model: nn.Module, tensors: list[torch.Tensor], mean: list[float], std: list[float],
                          device: torch.device) -> list[torch.Tensor]:
    """A frozen trunk gives the same features every epoch: compute them once per study, plain and rotated 180
    degrees (the flip augmentation that survives caching), so epochs only train the Transformer and heads."""
    model.backbone.eval()
    cached = []
    with torch.inference_mode():
        for series in tensors:
            views = normalise(torch.stack([series, series.flip(-2, -1)]), mean=mean, std=std).to(device)
            cached.append(model.slice_features(views).float().cpu().transpose(0, 1))  # (D, 2, F)
    return cached


def _next_version_dir(model_root: Path) -> tuple[str, Path]:
    """Create the next `v<N>` directory; mkdir without exist_ok makes concurrent trainings pick distinct versions."""
    model_root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in model_root.iterdir() if (m := re.fullmatch(r"v(\d+)", p.name))]
    number = max(taken, default=0) + 1
    while True:
        try:
            (model_root / f"v{number}").mkdir()
            return f"v{number}", model_root / f"v{number}"
        except FileExistsError:
            number += 1


def _train_epochs(*, model: nn.Module, config: TrainConfig, tensors: list[torch.Tensor], targets: torch.Tensor,
                  mean: list[float], std: list[float], device: torch.device,
                  progress: Callable[[str], None]) -> dict[str, float]:
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = (len(tensors) + config.batch_size - 1) // config.batch_size
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.2)
    amp_dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    stats: dict[str, float] = {}
    for epoch in range(config.epochs):
        model.train()
        started, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(tensors), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            if len(index) < 2 and len(tensors) > 1:
                continue  # a single-sample batch breaks BatchNorm statistics
            batch, padding = _collate([tensors[int(i)] for i in index], series=config.task == "series")
            labels = targets[index].to(device, non_blocking=True)
            padding = None if padding is None else padding.to(device)
            if config.freeze_backbone:
                # cached trunk features (B, D, 2, F): per study, the plain or the rotated view
                rotated = torch.rand(len(index), generator=generator).view(-1, 1, 1) < 0.5
                batch = torch.where(rotated, batch[:, :, 1], batch[:, :, 0]).to(device, non_blocking=True)
            else:
                batch = normalise(_augment(batch, generator), mean=mean, std=std).to(device, non_blocking=True)
                if device.type == "cuda" and batch.dim() == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                if config.task == "series":
                    # cached trunk features when frozen, else the trunk runs here
                    features = batch if config.freeze_backbone else model.slice_features(batch)
                    logits, attention = model.forward_features(features, padding)
                    loss = F.cross_entropy(logits.float(), labels)
                    if model.slice_head is not None:
                        loss = loss + F.cross_entropy(model.pooled_slice_logits(features, attention), labels)
                else:
                    logits = model(batch)
                    loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.detach().argmax(1) == labels).sum())
        stats = {"loss": total_loss / len(tensors), "accuracy": correct / len(tensors),
                 "epoch_seconds": time.perf_counter() - started}
        progress(f"{config.name} epoch {epoch + 1}/{config.epochs}: loss {stats['loss']:.4f}, "
                 f"train accuracy {stats['accuracy']:.3f}, {stats['epoch_seconds']:.1f} s")
    return stats


def train(*, config: TrainConfig, load_pixels: PixelLoader,
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train a classifier from `config.train_csv`, evaluate on `config.eval_csv` and save a new model version.

    CSVs have `path,label` columns (paths relative to the CSV; extra columns ignored; for task 'series' each path
    is a folder of slices). Raises DatasetError for a missing file (with its line), an evaluation label unknown
    to training, or fewer than 2 classes. `load_pixels(path)` decodes one image to float [0, 1].
    """
    report = progress or (lambda _message: None)
    started = time.perf_counter()
    _validate_config(config)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    train_set = read_dataset_csv(csv_path=config.train_csv, task=config.task)
    eval_set = read_dataset_csv(csv_path=config.eval_csv, task=config.task)
    labels = check_training_pair(train=train_set, evaluation=eval_set)
    device = select_device() if config.device == "auto" else torch.device(config.device)
    torch.manual_seed(config.seed)

    source = _load_source(config)
    tensors, targets = _load_tensors(train_set, input_size=config.input_size, load_pixels=load_pixels, labels=labels)
    mean, std = (source.manifest.mean, source.manifest.std) if source else _channel_stats(tensors)
    report(f"{config.name}: loaded {len(tensors)} training rows {train_set.counts} in "
           f"{time.perf_counter() - started:.1f} s; training {config.arch} at {config.input_size}px on {device}")
    arch_params = _arch_params(config)
    model = build_model(task=config.task, arch=config.arch, num_classes=len(labels), arch_params=arch_params)
    if source is not None:
        _copy_backbone(source=source, model=model, task=config.task, labels=labels)
        if config.freeze_backbone:
            model.backbone.requires_grad_(False)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if config.freeze_backbone:
        tensors = _cache_trunk_features(model=model, tensors=tensors, mean=mean, std=std, device=device)
        report(f"{config.name}: cached frozen trunk features ({time.perf_counter() - started:.1f} s)")
    train_stats = _train_epochs(model=model, config=config, tensors=tensors, targets=targets, mean=mean, std=std,
                                device=device, progress=report)
    train_seconds = time.perf_counter() - started
    del tensors

    model.eval()
    manifest = ModelManifest(
        name=config.name, version="", task=config.task, arch=config.arch, labels=labels, input_size=config.input_size,
        mean=mean, std=std, gradcam_layer=gradcam_layer_for(task=config.task, arch=config.arch),
        intended_use=config.intended_use or (DEMO_INTENDED_USE if config.demo else ""), demo=config.demo,
        arch_params=arch_params,
        training_data={
            "train_csv": train_set.csv_path.name, "eval_csv": eval_set.csv_path.name,
            "train_counts": train_set.counts, "eval_counts": eval_set.counts,
            "augmentation": FROZEN_AUGMENTATION if config.freeze_backbone else AUGMENTATION,
            "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed,
            "final_train_loss": round(train_stats["loss"], 5), "final_train_accuracy": train_stats["accuracy"],
            "train_seconds": round(train_seconds, 1), "device": str(device),
            "backbone_from": None if source is None else {
                "name": source.manifest.name, "version": source.manifest.version, "sha256": source.manifest.sha256,
                "frozen": config.freeze_backbone,
            },
        },
    )
    metrics = evaluate_dataset(loaded=LoadedModel(model=model, manifest=manifest, device=device), dataset=eval_set,
                               load_pixels=load_pixels, batch_size=config.batch_size, progress=report)
    version, model_dir = _next_version_dir(Path(config.out_root) / config.name)
    saved = save_model(model=model, manifest=replace(manifest, version=version, metrics=metrics), out_dir=model_dir)
    seconds = time.perf_counter() - started
    report(f"{config.name}: saved {version} to {model_dir} ({seconds:.1f} s in total)")
    return TrainResult(manifest=saved, model_dir=model_dir, metrics=metrics, seconds=seconds)
