"""Evaluating one model on its own: what to load and which test set, and the task card's verdict on the result."""
import json
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results import EvaluationTarget, EvaluationVerdict, ModelEvaluation
from loraflow.tasks.common.errors import LoraflowError


def evaluation_target(model: str, resolved: dict, test_path: str | None, task_name: str) -> EvaluationTarget:
    """The test set for `model` (resolved to its model and adapter paths and run folder by
    tasks/deploy/model_sources.py): test_path, else the run folder's test split, else the lineage's."""
    from loraflow.tasks.data.lineage import latest_version, lineage_root

    run_test = RunFolder(resolved["run_dir"]).data / "test.jsonl" if resolved["run_dir"] else None
    if test_path is None and run_test is not None and run_test.is_file():
        test_path = str(run_test)
    if test_path is None:
        latest = latest_version(lineage_root(task_name))
        if latest is None:
            raise LoraflowError(f"no test set for {model}: pass test_path, or a run folder, or seed the lineage of {task_name} with a pipeline run.")
        test_path = str(Path(latest["dir"]) / "test.jsonl")
    return EvaluationTarget(**resolved, test_path=test_path)


def write_verdict(result: ModelEvaluation, task_card: TaskCard, out_dir: str) -> EvaluationVerdict:
    """Check the task card's threshold and write out_dir/eval/metrics_<label>.json."""
    alerts = quality_alerts({"test": result.metrics}, task_card)
    path = RunFolder(out_dir).eval / f"metrics_{result.label}.json"
    verdict = EvaluationVerdict(**result.to_dict(), criteria_met=not alerts, alerts=alerts, summary_path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in verdict.to_dict().items() if k != "summary_path"}
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return verdict


def quality_alerts(results: dict[str, dict], task_card: TaskCard) -> list[str]:
    """One message per evaluation set whose success metric is below (or, lower-is-better, above) the task card's threshold."""
    criterion = task_card.success_metric
    alerts = []
    for name, metrics in results.items():
        value = metrics.get(criterion.metric)
        if value is None:
            alerts.append(f"{name}: the champion has no {criterion.metric} score (is the set empty?)")
            continue
        if not criterion.met(value):
            op = "below" if criterion.higher_is_better else "above"
            alerts.append(f"{name}: {criterion.metric} {value:.4f} is {op} the task card's threshold {criterion.threshold:g}")
    return alerts
