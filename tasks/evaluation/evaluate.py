"""Evaluation: score a model's greedy answers on the test set, then compare candidate, base and champion."""
import shutil

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.evaluate import EvalConfig
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results.evaluation import (Comparison, Criterion, CriterionOutcome, EvaluationSummary, FieldCheck,
                                                 ModelEvaluation, Slices, SummaryPaths)
from loraflow.tasks.evaluation.baselines import BASELINES, baseline_rows
from loraflow.tasks.evaluation.compare import compare_predictions, field_checks, slice_deltas
from loraflow.tasks.evaluation.constrained import answer_schema
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.field_metrics import FIELD_STATS, SHOWN_STATS, FieldSpec, example_field_scores, resolve_fields
from loraflow.tasks.evaluation.generate import generate_predictions, load_test_records, split_record
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.evaluation.metrics import METRIC_NAMES, aggregate, parse_json_object, row_language, score_pair

MODELS = ("candidate", "base", "champion")
LABELS = (*MODELS, *BASELINES)  # the models, then the baseline predictors (loraflow.tasks.evaluation.baselines)


def _known_field_metric(metric: str, declared: dict) -> bool:
    parts = metric.split(".")
    if len(parts) != 3 or parts[0] != "field":
        return False
    kind = None if not declared else "text" if isinstance(declared.get(parts[1]), str) else "categorical" if parts[1] in declared else "?"
    stats = FIELD_STATS.get(kind, ()) if kind else FIELD_STATS["categorical"] + FIELD_STATS["text"]
    return parts[2] in stats


def check_task_card_metrics(task_card: TaskCard) -> None:
    """Fail early when a success criterion names a metric evaluation does not compute."""
    for i, criterion in enumerate(task_card.success_criteria):
        if criterion.metric not in METRIC_NAMES and not _known_field_metric(criterion.metric, task_card.fields):
            raise LoraflowError(
                f"task_card.success_criteria[{i}].metric is {criterion.metric!r}, which evaluation does not compute; "
                f"use one of {', '.join(METRIC_NAMES)} or field.<name>.<stat> for a field of task_card.fields "
                f"(stats: {', '.join(FIELD_STATS['categorical'])} for categorical fields, {', '.join(FIELD_STATS['text'])} for text)."
            )


def answer_fields(test_path: str, task_card: TaskCard, max_samples: int | None = None) -> list[FieldSpec]:
    """The answer fields to score on this test set: task_card.fields, else inferred from the JSON references."""
    references = [parse_json_object(split_record(r, f"{test_path}:{i}")[1])
                  for i, r in enumerate(load_test_records(test_path, max_samples))]
    if not any(references):
        return []
    return resolve_fields(task_card.fields, references)


def score_rows(rows: list[dict], fields: list[FieldSpec] | None = None) -> list[dict]:
    """Add per-example `scores` (and, for JSON references, per-field `fields` outcomes) to prediction rows in place."""
    for row in rows:
        row["scores"] = score_pair(row["prediction"], row["reference"], row_language(row))
        reference = parse_json_object(row["reference"]) if fields else None
        if reference is not None:
            row["fields"], field_scores = example_field_scores(parse_json_object(row["prediction"]), reference, fields)
            row["scores"].update(field_scores)
    return rows


def _result(label: str, rows: list[dict], config: EvalConfig, out_dir: str) -> ModelEvaluation:
    """Write out_dir/eval/predictions_<label>.jsonl and return the label's metrics overall, per slice and per field."""
    path = RunFolder(out_dir).eval / f"predictions_{label}.jsonl"
    write_jsonl(path, rows)
    metrics = aggregate(rows, config.slice_by)
    return ModelEvaluation(label=label, predictions=str(path), metrics=metrics["overall"], by_language=metrics["by_language"],
                           by_slice=metrics["by_slice"], fields=metrics["fields"])


def evaluate_model(
    model_path: str, adapter_path: str | None, test_path: str, config: EvalConfig, task_card: TaskCard, out_dir: str, label: str
) -> ModelEvaluation:
    """Generate on the test set, score every answer and write out_dir/eval/predictions_<label>.jsonl."""
    check_task_card_metrics(task_card)
    schema = answer_schema(task_card.fields) if config.constrained else None
    rows = generate_predictions(model_path, adapter_path, test_path, config.max_new_tokens, config.batch_size,
                                config.max_samples, desc=f"evaluate {label}", schema=schema)
    score_rows(rows, answer_fields(test_path, task_card, config.max_samples))
    return _result(label, rows, config, out_dir)


def evaluate_baselines(train_path: str, test_path: str, config: EvalConfig, task_card: TaskCard,
                       out_dir: str) -> dict[str, ModelEvaluation]:
    """Score the baseline predictors (TF-IDF + logistic regression, majority class, stratified random) on the test set;
    {} for non-JSON answers. The classical predictor is scored on the categorical fields only (it predicts no text)."""
    fields = answer_fields(test_path, task_card, config.max_samples)
    if not fields or not config.baselines:
        return {}
    categorical = [spec for spec in fields if spec.kind == "categorical"]
    return {label: _result(label, score_rows(rows, categorical if label == "classical" else fields), config, out_dir)
            for label, rows in baseline_rows(train_path, test_path, fields, config.max_samples, config.seed).items()}


def _criteria(task_card: TaskCard, metrics: dict) -> list[CriterionOutcome]:
    """Each task-card criterion with the candidate's value and whether it is met."""
    return [CriterionOutcome(metric=c.metric, threshold=c.threshold, higher_is_better=c.higher_is_better,
                             value=metrics.get(c.metric), met=c.met(metrics.get(c.metric)))
            for c in task_card.success_criteria]


def _mlflow_metrics(results: dict[str, ModelEvaluation], comparisons: dict[str, Comparison], metric: str,
                    checks: dict[str, FieldCheck]) -> dict[str, float]:
    """Flat numeric metrics for MLflow: <label>.<metric> (field.<name>.<stat> included), <label>.<lang>.<metric>,
    diff/CI per comparison, and per categorical field the candidate's macro-F1 gain over the majority predictor."""
    flat = {}
    for name, check in checks.items():
        for other, versus in (("majority", check.vs_majority), ("classical", check.vs_classical)):
            if versus is not None:
                for key in ("diff", "ci_low", "ci_high"):
                    flat[f"candidate_vs_{other}.field.{name}.macro_f1.{key}"] = getattr(versus, key)
    for label, result in results.items():
        for name, value in result.metrics.items():
            flat[f"{label}.{name}"] = float(value)
        for lang, values in result.by_language.items():
            if metric in values:
                flat[f"{label}.{lang}.{metric}"] = float(values[metric])
    for other, comparison in comparisons.items():
        for key in ("diff", "ci_low", "ci_high", "p_value"):
            flat[f"candidate_vs_{other}.{metric}.{key}"] = getattr(comparison, key)
    return flat


def summarize_evaluation(results: dict[str, ModelEvaluation], task_card: TaskCard, config: EvalConfig,
                         out_dir: str) -> EvaluationSummary:
    """Compare candidate with base and champion, check the task card, write out_dir/eval/metrics.json.

    Also copies the candidate's predictions to out_dir/eval/predictions.jsonl (the run-folder contract).
    """
    if "candidate" not in results:
        raise ValueError(f"summarize_evaluation needs a 'candidate' result (got {sorted(results)})")
    check_task_card_metrics(task_card)
    criterion = task_card.success_metric
    candidate = results["candidate"]
    comparisons = {
        label: Comparison.model_validate(compare_predictions(candidate.predictions, results[label].predictions,
                                                             criterion.metric, config.bootstrap_samples, config.seed))
        for label in LABELS[1:]
        if label in results and set(results[label].fields) >= set(candidate.fields)
    }  # the classical predictor answers categorical fields only: no headline comparison where the task has text fields
    reference_label = "champion" if "champion" in results else "base" if "base" in results else None
    criteria = _criteria(task_card, candidate.metrics)
    eval_dir = RunFolder(out_dir).eval
    eval_dir.mkdir(parents=True, exist_ok=True)
    predictions = eval_dir / "predictions.jsonl"
    shutil.copyfile(candidate.predictions, predictions)
    labels = {label: results[label] for label in LABELS if label in results}
    checks = field_checks(candidate, results.get("majority"), config.collapse_margin, config.bootstrap_samples, config.seed,
                          classical=results.get("classical"))
    summary = EvaluationSummary(
        success_metric=Criterion(metric=criterion.metric, threshold=criterion.threshold,
                                 higher_is_better=criterion.higher_is_better),
        labels=labels,
        comparisons=comparisons,
        criteria=criteria,
        criteria_met=all(c.met for c in criteria),
        field_checks=checks,
        slices=Slices(reference=reference_label,
                      rows=slice_deltas(candidate, results[reference_label], criterion.metric) if reference_label else []),
        paths=SummaryPaths(metrics=str(eval_dir / "metrics.json"), predictions=str(predictions)),
        rubric=task_card.rubric,  # what human raters score (loraflow human-eval export reads it)
        mlflow_metrics=_mlflow_metrics(labels, comparisons, criterion.metric, checks),
    )
    (eval_dir / "metrics.json").write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    return summary


def field_outcome(summary: EvaluationSummary) -> list[dict]:
    """Per answer field and shown statistic, the value of each model and baseline: what the run prints at the end."""
    return [{"field": name, "stat": key, **{label: getattr(result.fields[name], key) for label, result in summary.labels.items()
                                            if name in result.fields}}
            for name, report in summary.candidate.fields.items() for key in SHOWN_STATS[report.kind]]


def evaluation_table(summary: EvaluationSummary, metric: str) -> list[dict]:
    """One row per model and baseline: the success metric, then each field's shown numbers (for the Prefect table)."""
    fields = field_outcome(summary)
    return [{"model": label, metric: round(result.metrics.get(metric, float("nan")), 4),
             **{f"{row['field']} {row['stat']}": round(row[label], 4) for row in fields if label in row}}
            for label, result in summary.labels.items()]
