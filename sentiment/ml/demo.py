"""The demo sentiment model: generated corpus + a short MiniLM fine-tune, sized for ~3 minutes on 2 CPU cores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentiment.ml.corpus import describe_corpus, write_splits
from sentiment.ml.train import ProgressCallback, TrainConfig, TrainResult, default_base_model, train

DEMO_NAME = "demo-financial-sentiment"
DEMO_INTENDED_USE = (
    "DEMO ONLY. Trained on sentences generated from project-written templates about fictional companies, not on "
    "real news; it shows the product's sentiment pipeline and explanations. Expect errors on real text. Not "
    "investment advice and not a basis for trading decisions."
)


@dataclass(frozen=True, kw_only=True)
class DemoRecipe:
    """Corpus sizes and fine-tuning settings of the demo model (defaults measured to fit ~3 minutes on 2 cores)."""

    # One pass over many distinct sentences generalised as well as two passes over fewer, for the same steps.
    n_train: int = 6000
    n_eval: int = 600
    n_test: int = 600
    seed: int = 13
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1.5e-4
    max_length: int = 48
    # Embeddings and the three lowest of MiniLM's six layers stay fixed: about half the backward work on CPU.
    freeze_layers: int = 3


def build_demo_model(*, out_root: Path | str, data_root: Path | str, progress: ProgressCallback | None = None,
                     recipe: DemoRecipe | None = None, base: Path | None = None, device: str | None = None,
                     version: str | None = None) -> TrainResult:
    """Write the generated train/eval/test CSVs under `data_root` and fine-tune MiniLM into a demo model.

    The model is saved under `out_root/demo-financial-sentiment/<version>/`; its manifest records the corpus,
    the recipe, the training time and the metrics on the eval split and on the held-out test split (companies
    and a share of templates never seen in training).
    """
    recipe = recipe or DemoRecipe()
    paths = write_splits(out_dir=data_root, n_train=recipe.n_train, n_eval=recipe.n_eval, n_test=recipe.n_test,
                         seed=recipe.seed)
    config = TrainConfig(
        train_csv=paths["train"], eval_csv=paths["eval"], test_csv=paths["test"], name=DEMO_NAME,
        out_root=Path(out_root), base=base or default_base_model(), epochs=recipe.epochs,
        batch_size=recipe.batch_size, lr=recipe.lr, max_length=recipe.max_length, seed=recipe.seed, demo=True,
        device=device, freeze_layers=recipe.freeze_layers, version=version,
        training_data=describe_corpus(n_train=recipe.n_train, n_eval=recipe.n_eval, n_test=recipe.n_test,
                                      seed=recipe.seed),
        intended_use=DEMO_INTENDED_USE,
    )
    return train(config=config, progress=progress)
