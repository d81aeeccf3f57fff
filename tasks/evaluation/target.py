"""Evaluating one model on its own: what to load and which test set, and the task card's verdict on the result."""
import json
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results import EvaluationTarget, EvaluationVerdict, ModelEvaluation
from loraflow.tasks.common.errors import LoraflowError


def evaluation_target(model: str, test_path: str | None, task_name: str, tracking_uri: str) -> EvaluationTarget:
    """The model (and adapter) behind `model`, and its test set: test_path, else the run folder's test split, else the lineage's."""
    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.feedback.monitor import resolve_eval_target

    target = resolve_eval_target(model, tracking_uri)
    if test_path is None and target["run_dir"] and (Path(target["run_dir"]) / "data" / "test.jsonl").is_file():
        test_path = str(Path(target["run_dir"]) / "data" / "test.jsonl")
    if test_path is None:
        latest = latest_version(lineage_root(task_name))
        if latest is None:
            raise LoraflowError(f"no test set for {model}: pass test_path, or a run folder, or seed the lineage of {task_name} with a pipeline run.")
        test_path = str(Path(latest["dir"]) / "test.jsonl")
    return EvaluationTarget(**target, test_path=test_path)


def write_verdict(result: ModelEvaluation, task_card: TaskCard, out_dir: str) -> EvaluationVerdict:
    """Check the task card's threshold and write out_dir/eval/metrics_<label>.json."""
    from loraflow.tasks.feedback.monitor import quality_alerts

    alerts = quality_alerts({"test": result.metrics}, task_card)
    path = RunFolder(out_dir).eval / f"metrics_{result.label}.json"
    verdict = EvaluationVerdict(**result.to_dict(), criteria_met=not alerts, alerts=alerts, summary_path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in verdict.to_dict().items() if k != "summary_path"}
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return verdict
