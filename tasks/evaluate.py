"""Evaluation: score a model's greedy answers on the test set, then compare candidate, base and champion."""
import json
import shutil
from pathlib import Path

from schemas.config.evaluate import EvalConfig
from schemas.config.task_card import TaskCard
from tasks.compare import compare_predictions, slice_deltas
from tasks.errors import LoraflowError
from tasks.generate import generate_predictions
from tasks.jsonl import write_jsonl
from tasks.metrics import METRIC_NAMES, aggregate, row_language, score_pair

LABELS = ("candidate", "base", "champion")


def check_task_card_metrics(task_card: TaskCard) -> None:
    """Fail early when a success criterion names a metric evaluation does not compute."""
    for i, criterion in enumerate(task_card.success_criteria):
        if criterion.metric not in METRIC_NAMES:
            raise LoraflowError(
                f"task_card.success_criteria[{i}].metric is {criterion.metric!r}, which evaluation does not compute; "
                f"use one of {', '.join(METRIC_NAMES)}."
            )


def score_rows(rows: list[dict]) -> list[dict]:
    """Add per-example `scores` to prediction rows (in place) and return them."""
    for row in rows:
        row["scores"] = score_pair(row["prediction"], row["reference"], row_language(row))
    return rows


def evaluate_model(
    model_path: str, adapter_path: str | None, test_path: str, config: EvalConfig, task_card: TaskCard, out_dir: str, label: str
) -> dict:
    """Generate on the test set, score every answer and write out_dir/eval/predictions_<label>.jsonl.

    Returns {"label", "predictions": path, "metrics": overall, "by_language", "by_slice"}.
    """
    check_task_card_metrics(task_card)
    rows = generate_predictions(
        model_path, adapter_path, test_path, config.max_new_tokens, config.batch_size, config.max_samples, desc=f"evaluate {label}"
    )
    score_rows(rows)
    path = Path(out_dir) / "eval" / f"predictions_{label}.jsonl"
    write_jsonl(path, rows)
    metrics = aggregate(rows, config.slice_by)
    return {
        "label": label,
        "predictions": str(path),
        "metrics": metrics["overall"],
        "by_language": metrics["by_language"],
        "by_slice": metrics["by_slice"],
    }


def _criteria(task_card: TaskCard, metrics: dict) -> list[dict]:
    """Each task-card criterion with the candidate's value and whether it is met."""
    found = []
    for criterion in task_card.success_criteria:
        value = metrics.get(criterion.metric)
        met = value is not None and (value >= criterion.threshold if criterion.higher_is_better else value <= criterion.threshold)
        found.append(
            {"metric": criterion.metric, "threshold": criterion.threshold, "higher_is_better": criterion.higher_is_better,
             "value": value, "met": bool(met)}
        )
    return found


def _mlflow_metrics(results: dict[str, dict], comparisons: dict[str, dict], metric: str) -> dict[str, float]:
    """Flat numeric metrics for MLflow: <label>.<metric>, <label>.<lang>.<metric>, diff/CI per comparison."""
    flat = {}
    for label, result in results.items():
        for name, value in result["metrics"].items():
            flat[f"{label}.{name}"] = float(value)
        for lang, values in result.get("by_language", {}).items():
            if metric in values:
                flat[f"{label}.{lang}.{metric}"] = float(values[metric])
    for other, comparison in comparisons.items():
        for key in ("diff", "ci_low", "ci_high", "p_value"):
            flat[f"candidate_vs_{other}.{metric}.{key}"] = comparison[key]
    return flat


def summarize_evaluation(results: dict[str, dict], task_card: TaskCard, config: EvalConfig, out_dir: str) -> dict:
    """Compare candidate with base and champion, check the task card, write out_dir/eval/metrics.json.

    Also copies the candidate's predictions to out_dir/eval/predictions.jsonl (the run-folder contract).
    """
    if "candidate" not in results:
        raise ValueError(f"summarize_evaluation needs a 'candidate' result (got {sorted(results)})")
    check_task_card_metrics(task_card)
    criterion = task_card.success_metric
    candidate = results["candidate"]
    comparisons = {
        label: compare_predictions(candidate["predictions"], results[label]["predictions"], criterion.metric, config.bootstrap_samples)
        for label in ("base", "champion")
        if label in results
    }
    reference_label = "champion" if "champion" in results else "base" if "base" in results else None
    criteria = _criteria(task_card, candidate["metrics"])
    eval_dir = Path(out_dir) / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    predictions = eval_dir / "predictions.jsonl"
    shutil.copyfile(candidate["predictions"], predictions)
    summary = {
        "success_metric": {"metric": criterion.metric, "threshold": criterion.threshold, "higher_is_better": criterion.higher_is_better},
        "labels": {label: results[label] for label in LABELS if label in results},
        "comparisons": comparisons,
        "criteria": criteria,
        "criteria_met": all(c["met"] for c in criteria),
        "slices": {
            "reference": reference_label,
            "rows": slice_deltas(candidate, results[reference_label], criterion.metric) if reference_label else [],
        },
        "paths": {"metrics": str(eval_dir / "metrics.json"), "predictions": str(predictions)},
    }
    summary["mlflow_metrics"] = _mlflow_metrics(summary["labels"], comparisons, criterion.metric)
    (eval_dir / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary
