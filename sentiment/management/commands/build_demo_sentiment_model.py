"""Build and register the demo sentiment model under the models dir, only when it is missing (idempotent)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Fine-tune the MiniLM encoder on generated financial sentences into the demo sentiment model and "
            "register it; reuses a built model on later runs.")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="build a new version even if one exists")

    def handle(self, *args, **opts):
        from sentiment.models import SentimentModel
        from sentiment.services import model_path, model_register

        from_demo = "demo-financial-sentiment"
        root = Path(settings.SENTIMENT_MODELS_DIR)
        if not opts["force"]:
            registered = SentimentModel.objects.filter(name=from_demo).order_by("-created_at").first()
            if registered is not None and (model_path(registered) / "model.safetensors").is_file():
                if not SentimentModel.objects.filter(is_active=True).exists():
                    model_register(model_dir=model_path(registered), activate=True)
                self.stdout.write(f"Demo sentiment model {registered.version} already built; nothing to do.")
                return
            on_disk = sorted(p for p in (root / from_demo).glob("*") if (p / "manifest.json").is_file()) \
                if (root / from_demo).is_dir() else []
            if on_disk:
                model = model_register(model_dir=on_disk[-1],
                                       activate=not SentimentModel.objects.filter(is_active=True).exists())
                self.stdout.write(f"Registered the demo sentiment model found at {on_disk[-1]}.")
                return
        from sentiment.ml.demo import build_demo_model

        self.stdout.write("Building the demo sentiment model (generated sentences, a few minutes on CPU)…")

        def progress(p) -> None:
            if p.stage != "train" or p.step % 25 == 0 or p.step == p.total_steps:
                self.stdout.write(f"  {p.stage} epoch {p.epoch} step {p.step}/{p.total_steps}"
                                  + (f" loss {p.loss:.3f}" if p.loss is not None else ""))

        result = build_demo_model(out_root=root, data_root=Path(settings.VAR_DIR) / "demo-data" / "sentiment",
                                  progress=progress)
        model = model_register(model_dir=result.model_dir,
                               activate=opts["force"] or not SentimentModel.objects.filter(is_active=True).exists())
        test = result.metrics.get("test", {})
        self.stdout.write(self.style.SUCCESS(
            f"Demo sentiment model {model.version} registered (held-out test accuracy "
            f"{test.get('accuracy', 0):.3f}, macro F1 {test.get('macro_f1', 0):.3f})."))
