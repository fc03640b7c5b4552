"""Train an imaging model from `path,label` CSVs, print its held-out metrics, save it versioned and register it."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imaging.management.commands._metrics_output import metrics_lines


class Command(BaseCommand):
    help = ("Train an image (or series) classifier: --train train.csv --eval eval.csv --name NAME. Each CSV has "
            "path,label columns with paths relative to the CSV (PNG, JPEG or DICOM; for --task series, folders).")

    def add_arguments(self, parser):
        parser.add_argument("--train", required=True, help="training CSV (path,label)")
        parser.add_argument("--eval", required=True, dest="eval_csv", help="held-out evaluation CSV (path,label)")
        parser.add_argument("--name", required=True, help="model name (letters, digits, '_', '.', '-')")
        parser.add_argument("--arch", default="resnet18", help="resnet18 (default), resnet50 or tiny")
        parser.add_argument("--input-size", type=int, default=None, help="square input size in pixels")
        parser.add_argument("--epochs", type=int, default=8)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=2e-3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--task", choices=["image", "series"], default="image")
        parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
        parser.add_argument("--intended-use", default="", help="shown on the model card")
        parser.add_argument("--demo", action="store_true", help="mark as a demo model (not for clinical use)")
        parser.add_argument("--no-activate", action="store_true", help="register without making it the active model")
        parser.add_argument("--out-root", default=None, help=f"default: {settings.IMAGING_MODELS_DIR}")

    def handle(self, *args, **options):
        from imaging.decoding import load_pixels
        from imaging.ml.architectures import UnknownArchError, arch_spec
        from imaging.ml.datasets import DatasetError
        from imaging.ml.train import TrainConfig, train
        from imaging.services import model_register

        try:
            spec = arch_spec(options["arch"])
            config = TrainConfig(
                train_csv=options["train"], eval_csv=options["eval_csv"], name=options["name"], arch=options["arch"],
                input_size=options["input_size"] or spec.default_input_size, epochs=options["epochs"],
                batch_size=options["batch_size"], lr=options["lr"], seed=options["seed"], task=options["task"],
                out_root=options["out_root"] or settings.IMAGING_MODELS_DIR, demo=options["demo"],
                device=options["device"], intended_use=options["intended_use"])
            result = train(config=config, load_pixels=load_pixels, progress=lambda m: self.stderr.write(m))
        except (DatasetError, UnknownArchError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        model = model_register(model_dir=result.model_dir, activate=not options["no_activate"])
        self.stdout.write(f"Model {model.name} {model.version} ({model.task}) saved to {result.model_dir}")
        self.stdout.write(f"sha256 {model.sha256}{'  [active]' if model.is_active else ''}")
        self.stdout.write("Evaluation on " + str(options["eval_csv"]) + ":")
        for line in metrics_lines(result.metrics):
            self.stdout.write("  " + line)
