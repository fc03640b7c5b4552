"""`./dev bench sentiment`: throughput of the sentiment product pipeline against the plain script a user would write.

One run, same texts, same device. Prints JSON with:
- pipeline_texts_per_s (attributions off / on): ingest service (normalise, dedupe, Document rows, quota) -> queue
  -> a real Celery worker on the gpu queue (tokenise, length-sorted batches, model, optional Integrated
  Gradients, Score + EntityMention rows, rollup upserts, alert evaluation) -> batch SUCCEEDED, timed end to end;
- plain_script_texts_per_s: read a CSV, tokenise, batch, run the model, write a CSV (what a user would write);
- bare_forward_texts_per_s: `model(**batch)` on already tokenised batches;
- pipeline_vs_plain_script: the ratios (target: >= 0.7 without attributions).

Everything runs in a throw-away VAR_DIR (SQLite database, embedded broker); the model is the demo model from
var/models (`./manage.py build_demo_sentiment_model`), or --model-dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
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
           "LOG_LEVEL": "WARNING", "SENTIMENT_MODELS_DIR": str(ROOT / "var" / "models"),
           "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update(env)
    return env


def _texts(n: int) -> list[str]:
    """Generated financial sentences about fictional companies (the held-out test split's generator)."""
    from sentiment.ml.corpus import generate_corpus

    rows = generate_corpus(n=n, seed=101, split="test")
    return [f"{row.text} (#{i})" for i, row in enumerate(rows)]  # unique, so dedupe never drops one


def _wait_done(batch_id: int, timeout: float = 1800.0) -> None:
    from django_scopes import scopes_disabled

    from sentiment.models import ScoringBatch

    deadline = time.monotonic() + timeout
    with scopes_disabled():
        while time.monotonic() < deadline:
            batch = ScoringBatch.objects.only("status", "error_message").get(pk=batch_id)
            if batch.status not in ("queued", "running"):
                if batch.status != "succeeded":
                    raise RuntimeError(f"batch {batch_id} {batch.status}: {batch.error_message}")
                return
            time.sleep(0.01)
    raise RuntimeError(f"batch {batch_id} did not finish in {timeout} s")


def _new_org(name: str):
    from accounts.models import User
    from accounts.services import organization_create
    from subscriptions.services import subscription_plan_assign

    user = User.objects.create_user(f"{name}@example.org", "bench-password-123")
    org = organization_create(name=name, owner=user)
    subscription_plan_assign(organization=org, plan_code="enterprise", actor=None, reason="benchmark")
    from sentiment.services import watchlist_create, watchlist_entity_add

    watchlist = watchlist_create(organization=org, name="Bench")
    for key in ("NWC", "CTSO", "FAB", "KVMR", "BRLM"):
        watchlist_entity_add(watchlist=watchlist, key=key, name="", aliases=[])
    return org


def _pipeline(texts: list[str], *, explain: bool, name: str) -> float:
    from sentiment import services

    org = _new_org(name)  # a fresh organisation: nothing is deduplicated away
    source = services.source_builtin(organization=org, kind="api")
    items = [services.IngestItem(text=t) for t in texts]  # what the API view hands the service
    started = time.perf_counter()
    result = services.documents_ingest(organization=org, source=source, items=items, explain=explain)
    _wait_done(result.batch.pk)
    return len(texts) / (time.perf_counter() - started)


def _plain_script(texts: list[str], model_dir: Path, batch_size: int, work: Path) -> tuple[float, float]:
    """What a user would write: pandas-free CSV in, tokenizer, fixed-size batches, model, CSV out.
    Returns (texts/s, bare forward texts/s)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sentiment.ml.runtime import autocast_for, select_device

    in_csv, out_csv = work / "texts.csv", work / "predictions.csv"
    with in_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    device = select_device()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = json.loads((model_dir / "manifest.json").read_text())["max_length"]

    def run(rows: list[str]) -> list[list[float]]:
        batch = tokenizer(rows, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        with torch.inference_mode(), autocast_for(device):
            return torch.softmax(model(**batch).logits.float(), dim=-1).cpu().tolist()

    run(texts[:batch_size])  # warm-up, as the pipeline's worker is warm
    started = time.perf_counter()
    with in_csv.open(newline="") as src:
        rows = [row["text"] for row in csv.DictReader(src)]
    with out_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", *labels])
        for first in range(0, len(rows), batch_size):
            chunk = rows[first:first + batch_size]
            for text, probs in zip(chunk, run(chunk), strict=True):
                writer.writerow([text, labels[probs.index(max(probs))], *probs])
    plain = len(rows) / (time.perf_counter() - started)
    # Bare forward: tokenised up front, only model(**batch) timed.
    batches = [tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt").to(device) for i in range(0, len(texts), batch_size)]
    with torch.inference_mode(), autocast_for(device):
        model(**batches[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for batch in batches:
            model(**batch).logits.float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return plain, len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--explain-texts", type=int, default=0,
                        help="texts for the run with attributions (default: same as --texts)")
    parser.add_argument("--model-dir", type=Path, default=None, help="a saved sentiment model (default: the demo)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lumen-bench-sentiment-"))
    env = _setup_environment(work)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from sentiment.services import model_path, model_register

    if args.model_dir is not None:
        model = model_register(model_dir=args.model_dir.resolve())
    else:
        saved = sorted(Path(settings.SENTIMENT_MODELS_DIR).glob("demo-financial-sentiment/*/manifest.json"))
        if not saved:
            sys.exit("No demo sentiment model under var/models; run ./manage.py build_demo_sentiment_model first.")
        model = model_register(model_dir=saved[-1].parent)
    texts = _texts(args.texts)
    explain_texts = texts[:args.explain_texts] if args.explain_texts else texts
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--concurrency", "1",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--hostname", "bench@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "worker.log").open("wb"),
        start_new_session=True)
    try:
        _pipeline(texts[:64], explain=True, name="warm1")  # worker up, model loaded, caches hot
        _pipeline(texts[:64], explain=False, name="warm2")
        without = _pipeline(texts, explain=False, name="plain")
        with_attr = _pipeline(explain_texts, explain=True, name="explained")
    except RuntimeError as exc:
        sys.exit(f"{exc}\n{(work / 'worker.log').read_text()[-3000:]}")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    plain, forward = _plain_script(texts, model_path(model), settings.SENTIMENT_BATCH_SIZE, work)
    import torch

    result = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "model": f"{model.name} {model.version} ({model.manifest.get('base_model', '')})",
        "texts": len(texts), "texts_with_attributions": len(explain_texts),
        "batch_size": settings.SENTIMENT_BATCH_SIZE, "ig_steps": settings.SENTIMENT_IG_STEPS,
        "pipeline_texts_per_s": {"attributions_off": round(without, 1), "attributions_on": round(with_attr, 1)},
        "plain_script_texts_per_s": round(plain, 1),
        "bare_forward_texts_per_s": round(forward, 1),
        "pipeline_vs_plain_script": {"attributions_off": round(without / plain, 3),
                                     "attributions_on": round(with_attr / plain, 3)},
        "target": "pipeline without attributions >= 0.7 x plain script",
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
