"""Evaluate a registered sentiment model on a labelled CSV and print the metrics as JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print accuracy, macro/weighted F1 and per-class precision/recall/F1 of a model on a text,label CSV."

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, type=Path, help="CSV with columns text,label")
        parser.add_argument("--model", default="", help="name or name:version (default: the active model)")
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args, **opts):
        from accounts.exceptions import ServiceError
        from sentiment.ml.evaluate import evaluate_csv
        from sentiment.ml.labelled_data import DatasetError
        from sentiment.ml.manifest import ModelLoadError
        from sentiment.pipeline import load
        from sentiment.services import model_resolve

        if not opts["data"].is_file():
            raise CommandError(f"--data {opts['data']}: file not found.")
        try:
            model = model_resolve(spec=opts["model"])
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if model is None:
            raise CommandError("No sentiment model is active; run build_demo_sentiment_model or train_sentiment.")
        try:
            metrics = evaluate_csv(loaded=load(model), csv_path=opts["data"], batch_size=opts["batch_size"])
        except (DatasetError, ModelLoadError) as exc:
            raise CommandError(str(exc)) from exc
        metrics["model"] = {"name": model.name, "version": model.version, "sha256": model.sha256}
        self.stdout.write(json.dumps(metrics, indent=2))
