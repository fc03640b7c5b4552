"""Evaluate a registered imaging model on a labelled CSV; prints the metrics as JSON on stdout."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Evaluate a model (default: the active image model) on a path,label CSV; prints JSON metrics."

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="CSV with path,label[,mask_path] (paths relative to it)")
        parser.add_argument("--model", default=None, help="NAME or NAME:VERSION (default: the active image model)")
        parser.add_argument("--batch-size", type=int, default=32)

    def handle(self, *args, **options):
        from imaging import selectors
        from imaging.decoding import load_pixels
        from imaging.ml.datasets import DatasetError
        from imaging.ml.evaluate import evaluate_csv
        from imaging.ml.manifest import ModelLoadError
        from imaging.ml.runtime import get_model
        from imaging.services import model_path

        if options["model"]:
            name, _, version = options["model"].partition(":")
            model = selectors.model_get_by_name(name=name, version=version or None)
        else:
            model = selectors.active_model(task="image")
        if model is None:
            known = ", ".join(f"{m.name}:{m.version}" for m in selectors.model_list()) or "none registered"
            raise CommandError(f"No such model ({options['model'] or 'active image model'}); known: {known}.")
        try:
            loaded = get_model(model_dir=model_path(model), sha256=model.sha256)
            metrics = evaluate_csv(loaded=loaded, csv_path=options["data"], load_pixels=load_pixels,
                                   batch_size=options["batch_size"])
        except (DatasetError, ModelLoadError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        metrics["model"] = {"name": model.name, "version": model.version, "sha256": model.sha256}
        self.stdout.write(json.dumps(metrics, indent=2, sort_keys=True))
