"""What a registered model version says about itself: a one-paragraph description and a markdown model card."""
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results import PromotionDecision

HEADLINE_METRICS = 6  # the success metric first, then the next few the evaluation reported


def headline_metrics(metrics: dict, task_card: TaskCard) -> dict[str, float]:
    """The task card's criteria metrics first, then other numeric metrics, at most HEADLINE_METRICS of them."""
    numeric = {k: float(v) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n" and not k.startswith("n_")}  # counts
    ordered = [c.metric for c in task_card.success_criteria if c.metric in numeric]
    ordered += [k for k in sorted(numeric) if k not in ordered]
    return {k: numeric[k] for k in ordered[:HEADLINE_METRICS]}


def version_description(task_card: TaskCard, data_hash: str, metrics: dict, decision: PromotionDecision, run_id: str) -> str:
    """The model version's description in the registry: task, headline metrics, the gate's decision and reasons, lineage."""
    metric = task_card.success_metric
    op = ">=" if metric.higher_is_better else "<="
    shown = ", ".join(f"{k} {v:.4f}" for k, v in headline_metrics(metrics, task_card).items())
    gate = "passed: promoted to champion" if decision.promote else "did not pass: not promoted"
    return (f"{task_card.name}: {task_card.description or 'fine-tuned with loraflow.'} Test split: {shown or 'no metrics'} "
            f"(task card: {metric.metric} {op} {metric.threshold:g}). Promotion gate {gate} "
            f"({'; '.join(decision.reasons) or 'no reasons recorded'}). Data hash {data_hash[:12]}, MLflow run {run_id}.")


def model_card_markdown(task_card: TaskCard, data_hash: str, metrics: dict, decision: PromotionDecision, run_id: str) -> str:
    """The model card (README.md of the logged model): task card, data hash, headline metrics, the gate's reasons."""
    lines = [f"# {task_card.name}", "", task_card.description or "A model fine-tuned with loraflow.", "",
             "## Task", "", f"- input: {task_card.input or 'n/a'}", f"- output: {task_card.output or 'n/a'}",
             f"- languages: {', '.join(task_card.languages)}", f"- intended use: {task_card.intended_use}"]
    lines += [f"- edge case: {case}" for case in task_card.edge_cases]
    lines += ["", "## Success criteria", "", "| metric | threshold | this model |", "|---|---|---|"]
    for c in task_card.success_criteria:
        value = metrics.get(c.metric)
        lines.append(f"| {c.metric} | {'>=' if c.higher_is_better else '<='} {c.threshold:g} | "
                     f"{'n/a' if value is None else f'{value:.4f}'} |")
    lines += ["", "## Headline metrics (test split)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in headline_metrics(metrics, task_card).items()]
    lines += ["", "## Promotion gate", "", f"Decision: {'promote' if decision.promote else 'keep the champion'}", ""]
    lines += [f"- {reason}" for reason in decision.reasons]
    for example in task_card.examples[:3]:
        lines += ["", "## Example", "", f"Input: {example.input}", "", f"Output: `{example.output}`"]
    lines += ["", "## Lineage", "", f"- data hash (train/val/test files): `{data_hash}`", f"- MLflow run: `{run_id}`"]
    return "\n".join(lines) + "\n"
