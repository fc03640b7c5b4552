"""Shared by train_imaging and evaluate_imaging: the human-readable metrics table."""

from __future__ import annotations


def metrics_lines(metrics: dict) -> list[str]:
    auc = metrics.get("roc_auc")
    lines = [f"accuracy  {metrics['accuracy']:.4f}   (n={metrics.get('n')})",
             f"ROC AUC   {auc:.4f}" if auc is not None else "ROC AUC   undefined (one class only in the data)",
             f"macro F1  {metrics.get('macro_f1', 0.0):.4f}",
             f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for label, scores in metrics.get("per_class", {}).items():
        lines.append(f"{label:<20} {scores['precision']:>9.4f} {scores['recall']:>9.4f} {scores['f1']:>9.4f} "
                     f"{scores['support']:>8}")
    if metrics.get("pointing_game") is not None:
        lines.append(f"pointing game {metrics['pointing_game']:.4f} (n={metrics.get('pointing_game_n')})")
    return lines
