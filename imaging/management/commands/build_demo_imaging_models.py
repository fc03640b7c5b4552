"""Build the two demo models (image classifier, series model) from generated phantoms, once, and register them.

Idempotent: models already on disk under the models directory are registered without training again; nothing is
done when both demo models are registered and their files are present.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


def _current_gradcam_layer(manifest: dict) -> str | None:
    from imaging.ml.architectures import UnknownArchError, gradcam_layer_for

    try:
        return gradcam_layer_for(task=manifest.get("task", ""), arch=manifest.get("arch", ""))
    except UnknownArchError:
        return None


def _is_current(model_dir: Path) -> bool:
    """Weights present and built by this code's recipe (same explained layer; series models with a slice head)."""
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("task") == "series" and not (manifest.get("arch_params") or {}).get("slice_head"):
        return False
    return (model_dir / "weights.pt").is_file() and manifest.get("gradcam_layer") == _current_gradcam_layer(manifest)


def _saved_demo_dirs(root: Path) -> dict[str, Path]:
    """Newest saved demo model directory per task under `root/<name>/v<N>/`."""
    found: dict[str, tuple[int, Path]] = {}
    for manifest_path in root.glob("*/v*/manifest.json"):
        try:
            manifest = json.loads(manifest_path.read_text())
            number = int(manifest_path.parent.name[1:])
        except (OSError, ValueError):
            continue
        if not manifest.get("demo") or not _is_current(manifest_path.parent):
            continue  # incomplete, or built by an older recipe (see _is_current): build anew
        task = manifest.get("task")
        if task not in found or number > found[task][0]:
            found[task] = (number, manifest_path.parent)
    return {task: path for task, (_, path) in found.items()}


class Command(BaseCommand):
    help = "Train and register the demo imaging models from generated phantoms when they are missing."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="train new versions even if demo models exist")

    def handle(self, *args, **options):
        from imaging.models import ImagingModel
        from imaging.services import model_path, model_register

        root = Path(settings.IMAGING_MODELS_DIR)
        registered = {m.task: m for m in ImagingModel.objects.filter(is_demo=True, is_active=True)}
        ready = all(task in registered and _is_current(model_path(registered[task])) for task in ("image", "series"))
        if ready and not options["force"]:
            self.stdout.write("Demo imaging models are installed: " + ", ".join(
                f"{m.name} {m.version}" for m in registered.values()))
            return
        saved = {} if options["force"] else _saved_demo_dirs(root)
        if len(saved) < 2:
            self.stdout.write("Building the demo imaging models from generated phantoms (a few minutes on CPU)...")
            self._build(root=root)
            saved = _saved_demo_dirs(root)
        for task in ("image", "series"):
            if task not in saved:
                self.stderr.write(f"No demo {task} model was produced under {root}.")
                continue
            # The demo becomes active unless an operator activated another model of that task.
            other_active = ImagingModel.objects.filter(task=task, is_active=True, is_demo=False).exists()
            model = model_register(model_dir=saved[task], activate=not other_active)
            self.stdout.write(f"Registered {model.name} {model.version} ({task}), sha256 {model.sha256[:12]}...")

    def _build(self, *, root: Path) -> None:
        from imaging.decoding import load_pixels
        from imaging.ml.demo import build_demo_models

        data_root = Path(settings.VAR_DIR) / "demo-data" / "imaging"
        build_demo_models(out_root=root, data_root=data_root, progress=self.stdout.write, load_pixels=load_pixels)
