"""`./dev bench imaging`: throughput of the imaging product pipeline against the plain script a user would write.

One run, same files, same device. Prints JSON with:
- pipeline_images_per_s (with / without Grad-CAM): upload service (sniff, decode, store original + preview, rows,
  quota) -> queue -> a real Celery worker (decode from storage, preprocess, batched inference, Grad-CAM, overlay
  PNGs, result rows) -> job SUCCEEDED, timed end to end;
- plain_script_images_per_s: read the same files, decode, batch, run the model, write a CSV, with the model loaded
  as a user would (architecture, state dict, eval(); default memory layout);
- bare_forward_images_per_s: `model(batch)` on a prepared batch of that model;
- the same two on the product's loaded model (channels_last), to show what the pipeline adds around the model;
- single_image_latency_s p50/p95: upload-to-result of one 512x512 image with a warm worker.

Throughput figures are medians of --repeat timed runs (3). Everything runs in a throw-away VAR_DIR (database,
media, embedded broker); the demo model comes from var/models (run `./manage.py build_demo_imaging_models` first).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_environment(work: Path) -> dict:
    env = {**os.environ, "VAR_DIR": str(work / "var"), "MEDIA_ROOT": str(work / "var" / "media"),
           "DATABASE_URL": f"sqlite:///{work / 'var' / 'bench.sqlite3'}", "CELERY_BROKER_URL": "filesystem://",
           "CELERY_RESULT_BACKEND": f"file://{work / 'var' / 'celery' / 'results'}",
           "CELERY_TASK_ALWAYS_EAGER": "false", "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "LOG_LEVEL": "WARNING",
           "IMAGING_MODELS_DIR": str(ROOT / "var" / "models")}
    os.environ.update(env)
    return env


def _phantom_files(out: Path, count: int, size: int) -> list[Path]:
    from imaging.ml.phantoms import write_image_dataset

    csv_path = write_image_dataset(out_dir=out, n=count, size=size, seed=7)
    with csv_path.open() as handle:
        return [csv_path.parent / row["path"] for row in csv.DictReader(handle)]


def _uploads(paths: list[Path]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]


def _wait_done(job, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db(fields=["status", "error_message"])
        if job.status not in ("waiting", "queued", "running"):
            if job.status != "succeeded":
                raise RuntimeError(f"job {job.pk} {job.status}: {job.error_message}")
            return
        time.sleep(0.005)
    raise RuntimeError(f"job {job.pk} did not finish in {timeout} s")


def _pipeline(org, user, paths: list[Path], *, explain: bool) -> float:
    from imaging.uploads import study_upload

    files = _uploads(paths)  # the request body: bytes in memory, as Django hands them to the view
    started = time.perf_counter()
    result = study_upload(organization=org, uploaded_by=user, files=files, explain=explain)
    _wait_done(result.jobs[0])
    return len(paths) / (time.perf_counter() - started)


def _user_model(model_dir: Path):
    """The model as a plain script loads it: build the architecture, load the state dict, eval. No layout tuning."""
    import torch

    from imaging.ml.architectures import build_model
    from imaging.ml.manifest import LoadedModel, read_manifest
    from imaging.ml.runtime import select_device

    manifest = read_manifest(model_dir=model_dir)
    device = select_device()
    model = build_model(task=manifest.task, arch=manifest.arch, num_classes=len(manifest.labels),
                        arch_params=manifest.arch_params)
    model.load_state_dict(torch.load(model_dir / "weights.pt", weights_only=True, map_location=device))
    return LoadedModel(model=model.to(device).eval(), manifest=manifest, device=device)


def _plain_script(paths: list[Path], loaded, batch_size: int, out_csv: Path) -> tuple[float, float]:
    """What a user would write: decode, batch, model, CSV. Returns (images/s, bare forward images/s)."""
    import torch

    from imaging.decoding import load_pixels
    from imaging.ml.architectures import is_channels_last
    from imaging.ml.preprocess import preprocess_images
    from imaging.ml.runtime import inference_context

    device = loaded.device
    labels = loaded.manifest.labels
    layout = torch.channels_last if is_channels_last(loaded.model) else None
    warm = preprocess_images(images=[load_pixels(paths[0])] * batch_size, manifest=loaded.manifest).to(device)
    if layout is not None:
        warm = warm.contiguous(memory_format=layout)
    with torch.inference_mode(), inference_context(device):
        loaded.model(warm)
    started = time.perf_counter()
    with out_csv.open("w", newline="") as handle, torch.inference_mode(), inference_context(device):
        writer = csv.writer(handle)
        writer.writerow(["path", *labels])
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            batch = preprocess_images(images=[load_pixels(p) for p in chunk], manifest=loaded.manifest).to(device)
            if layout is not None:
                batch = batch.contiguous(memory_format=layout)
            probs = torch.softmax(loaded.model(batch).float(), dim=1).cpu().numpy()
            writer.writerows([p.name, *row] for p, row in zip(chunk, probs.tolist(), strict=True))
    plain = len(paths) / (time.perf_counter() - started)
    rounds = max(3, 256 // batch_size)
    with torch.inference_mode(), inference_context(device):
        loaded.model(warm)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(rounds):
            loaded.model(warm)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return plain, rounds * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--latency-runs", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each throughput figure (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lumen-bench-imaging-"))
    env = _setup_environment(work)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django_scopes import scopes_disabled

    call_command("migrate", verbosity=0)
    from imaging.models import ImagingModel
    from imaging.services import model_path, model_register

    with scopes_disabled():
        saved = sorted(Path(settings.IMAGING_MODELS_DIR).glob("*/v*/manifest.json"))
        for manifest in saved:
            model_register(model_dir=manifest.parent)
        image_model = ImagingModel.objects.filter(task="image", is_active=True).first()
        if image_model is None:
            sys.exit("No image model under var/models; run ./manage.py build_demo_imaging_models first.")
        ImagingModel.objects.filter(task="series").update(is_active=False)  # plain images only: no series stage

        from accounts.models import User
        from accounts.services import organization_create
        from subscriptions.services import subscription_plan_assign

        user = User.objects.create_user("bench@example.org", "bench-password-123")
        org = organization_create(name="Bench", owner=user)
        subscription_plan_assign(organization=org, plan_code="enterprise", actor=None, reason="benchmark")

        paths = _phantom_files(work / "phantoms", args.images, args.size)
        single = _phantom_files(work / "single", 1, 512)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--concurrency", "1",
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--hostname", "bench@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "worker.log").open("wb"),
            start_new_session=True)
        try:
            _pipeline(org, user, paths[:8], explain=True)  # warm: worker up, model loaded, caches hot
            _pipeline(org, user, paths[:8], explain=False)
            with_cam = statistics.median(_pipeline(org, user, paths, explain=True) for _ in range(args.repeat))
            without_cam = statistics.median(_pipeline(org, user, paths, explain=False) for _ in range(args.repeat))
            latencies = []
            from imaging.uploads import study_upload

            for _ in range(args.latency_runs):
                files = _uploads(single)
                started = time.perf_counter()
                job = study_upload(organization=org, uploaded_by=user, files=files).jobs[0]
                _wait_done(job)
                latencies.append(time.perf_counter() - started)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        import torch

        from imaging.ml.manifest import load_model
        from imaging.ml.runtime import select_device
        from imaging.pipeline import io_threads

        model_dir = Path(model_path(image_model))
        runs = {}
        for name, loaded in (("user", _user_model(model_dir)), ("product", load_model(model_dir=model_dir,
                                                                                      device=select_device()))):
            measured = [_plain_script(paths, loaded, settings.IMAGING_BATCH_SIZE, work / "predictions.csv")
                        for _ in range(args.repeat)]
            runs[name] = (statistics.median(m[0] for m in measured), statistics.median(m[1] for m in measured))
        plain, forward = runs["user"]
        plain_same, forward_same = runs["product"]

        latencies.sort()
        result = {
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
            "model": f"{image_model.name} {image_model.version} ({image_model.manifest.get('arch')}, "
                     f"{image_model.manifest.get('input_size')} px)",
            "images": len(paths), "image_size": f"{args.size}x{args.size} PNG (8/16-bit phantoms)",
            "batch_size": settings.IMAGING_BATCH_SIZE, "worker_io_threads": io_threads(),
            "upload_threads": settings.IMAGING_UPLOAD_THREADS,
            "repeats": args.repeat, "figures": "medians of the repeats",
            "pipeline_images_per_s": {"with_gradcam": round(with_cam, 2), "without_gradcam": round(without_cam, 2)},
            # as a user writes it: the architecture, its state dict, eval(); default memory layout
            "plain_script_images_per_s": round(plain, 2),
            "bare_forward_images_per_s": round(forward, 2),
            "pipeline_vs_plain_script": {"with_gradcam": round(with_cam / plain, 3),
                                         "without_gradcam": round(without_cam / plain, 3)},
            # the same script on the product's loaded model (channels_last): what the pipeline adds around it
            "plain_script_product_model_images_per_s": round(plain_same, 2),
            "bare_forward_product_model_images_per_s": round(forward_same, 2),
            "pipeline_vs_plain_script_product_model": {"with_gradcam": round(with_cam / plain_same, 3),
                                                       "without_gradcam": round(without_cam / plain_same, 3)},
            "single_image_latency_s": {"p50": round(statistics.median(latencies), 3),
                                       "p95": round(latencies[min(len(latencies) - 1,
                                                                  int(0.95 * len(latencies)))], 3),
                                       "runs": len(latencies)},
        }
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
