"""Saved sentiment models: the manifest (model card + checksum) and the one code path that saves and loads them.

torch and transformers are imported inside the functions that need them, so the web process can read a
manifest (to show the model card) without loading torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment.ml.labelled_data import LABELS

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FORMAT = 1
_HASH_CHUNK = 1 << 20


class ModelLoadError(RuntimeError):
    """A model directory cannot be used; the message names the directory, the problem and the fix."""


@dataclass(frozen=True, kw_only=True)
class SentimentManifest:
    """Model card and integrity record stored as manifest.json next to the weights."""

    name: str
    version: str
    base_model: str
    max_length: int
    labels: tuple[str, ...] = LABELS
    weights_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: str = ""
    intended_use: str = ""
    demo: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form written to manifest.json."""
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        data["format"] = MANIFEST_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentimentManifest:
        """Build from manifest.json content; unknown keys are ignored so newer writers stay readable."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if "labels" in values:
            values["labels"] = tuple(values["labels"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class LoadedSentimentModel:
    """A verified model ready for inference: eval mode, on `device`."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    manifest: SentimentManifest
    device: torch.device
    model_dir: Path

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large weights do not load into memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(*, model_dir: Path | str) -> SentimentManifest:
    """Read manifest.json of a saved model without loading torch."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: model directory not found; build the model first or fix the path.")
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {MANIFEST_FILE}; save models with sentiment.ml.manifest.save_model.")
    try:
        return SentimentManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc}); rebuild or re-save the model.") from exc


def _set_label_maps(model: PreTrainedModel, labels: tuple[str, ...]) -> None:
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}


def save_model(*, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, manifest: SentimentManifest,
               out_dir: Path | str) -> SentimentManifest:
    """Save weights (safetensors), config, tokenizer and manifest.json; return the manifest with its checksum.

    The model's label maps are set from the manifest so the config alone also says what each class means.
    """
    out_dir = Path(out_dir)
    if manifest.labels != LABELS:
        raise ValueError(f"manifest labels must be {LABELS}, got {manifest.labels}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    _set_label_maps(model, manifest.labels)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    weights = out_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{out_dir}: save_pretrained wrote no {WEIGHTS_FILE}; sharded weights are not supported.")
    saved = dataclasses.replace(manifest, weights_sha256=file_sha256(weights))
    (out_dir / MANIFEST_FILE).write_text(json.dumps(saved.to_dict(), indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    return saved


def _check_labels(model_dir: Path, manifest: SentimentManifest, model: PreTrainedModel) -> None:
    if manifest.labels != LABELS:
        raise ModelLoadError(
            f"{model_dir}: unknown labels {list(manifest.labels)} in {MANIFEST_FILE}; "
            f"sentiment models must predict {list(LABELS)} in that order."
        )
    config_labels = tuple(model.config.id2label[i] for i in sorted(model.config.id2label))
    if config_labels != LABELS:
        raise ModelLoadError(
            f"{model_dir}: model config labels {list(config_labels)} do not match {list(LABELS)}; "
            "retrain or re-save the model with sentiment.ml.manifest.save_model."
        )


def load_model(*, model_dir: Path | str, expected_sha256: str | None = None,
               device: str | torch.device) -> LoadedSentimentModel:
    """Load a saved model through `from_pretrained` on a local path, after verifying its weights checksum.

    The weights must match the manifest's sha256 and, when given, `expected_sha256` (the registry's value).
    Raises ModelLoadError with a clear message for a missing directory, missing files, a checksum mismatch or
    labels other than negative/neutral/positive.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir=model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{model_dir}: {WEIGHTS_FILE} is missing; the model directory is incomplete.")
    if not manifest.weights_sha256:
        raise ModelLoadError(f"{model_dir}: {MANIFEST_FILE} records no weights sha256; re-save the model.")
    actual = file_sha256(weights)
    if actual != manifest.weights_sha256:
        raise ModelLoadError(
            f"{model_dir}: checksum mismatch, {WEIGHTS_FILE} has sha256 {actual} but {MANIFEST_FILE} records "
            f"{manifest.weights_sha256}; the weights were modified or corrupted, rebuild the model."
        )
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ModelLoadError(
            f"{model_dir}: checksum mismatch, {WEIGHTS_FILE} has sha256 {actual} but {expected_sha256} was "
            "expected; point the setting at the right model version or update its checksum."
        )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: transformers could not load the model ({exc}).") from exc
    _check_labels(model_dir, manifest, model)
    torch_device = torch.device(device)
    model.to(torch_device)
    model.eval()
    return LoadedSentimentModel(model=model, tokenizer=tokenizer, manifest=manifest, device=torch_device,
                                model_dir=model_dir)
