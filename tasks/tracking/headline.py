"""A run's headline, said the same way everywhere: each answer field for candidate vs base vs majority, and the gate.

It becomes the MLflow run's description (Markdown), the per-field comparison table artifact, and the flow's last log
lines. Input is the run's outcome (success metric values, `fields` rows {field, stat, <label>: value}, promotion).
"""
from loraflow.schemas.results import RunOutcome

# The models a person compares first; any other label in a row (stratified, classical, ...) follows in its own order.
LEADING_LABELS = ("candidate", "base", "champion", "majority")
FIELD_TABLE = "eval/field_scores.json"


def _labels(rows: list[dict]) -> list[str]:
    seen = [k for row in rows for k in row if k not in ("field", "stat")]
    present = list(dict.fromkeys(seen))
    return [label for label in LEADING_LABELS if label in present] + [label for label in present if label not in LEADING_LABELS]


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def gate_verdict(promote: bool, reasons: list[str]) -> str:
    """The gate's decision in two words; with no champion yet there is none to keep."""
    if promote:
        return "PROMOTE"
    return "NOT PROMOTED (no champion yet)" if any("no champion yet" in r for r in reasons) else "KEEP CHAMPION"


def _decision(outcome: RunOutcome) -> tuple[str, list[str]]:
    promotion = outcome.promotion
    if promotion is None:
        return gate_verdict(False, []), []
    return gate_verdict(promotion.promote, promotion.reasons), promotion.failures


def headline_lines(outcome: RunOutcome) -> list[str]:
    """Plain lines: the success metric, one line per field statistic with every model and baseline, the gate's decision."""
    metric = outcome.success_metric
    lines = [f"{metric}: candidate {_num(outcome.candidate)} vs base {_num(outcome.base)}"] if metric else []
    rows = outcome.fields
    labels = _labels(rows)
    for row in rows:
        lines.append(f"{row['field']} {row['stat']}: " + ", ".join(f"{label} {_num(row[label])}" for label in labels if label in row))
    verdict, failed = _decision(outcome)
    lines.append(f"promotion gate: {verdict}" + (f" ({len(failed)} check(s) failed)" if failed else ""))
    return lines + [f"  {reason}" for reason in failed]


def field_table(outcome: RunOutcome) -> dict[str, list]:
    """Per-field scores of every model and baseline as columns (MLflow's log_table data)."""
    rows = outcome.fields
    labels = _labels(rows)
    return {"field": [r["field"] for r in rows], "stat": [r["stat"] for r in rows],
            **{label: [r.get(label) for r in rows] for label in labels}}


def run_description(outcome: RunOutcome, task_name: str) -> str:
    """The MLflow run's description (Markdown): the headline table and the gate's decision with its failed checks."""
    metric = outcome.success_metric
    verdict, failed = _decision(outcome)
    parts = [f"**{task_name}** — promotion gate: **{verdict}**"]
    if metric:
        parts.append(f"{metric}: candidate **{_num(outcome.candidate)}**, base {_num(outcome.base)}")
    rows = outcome.fields
    if rows:
        labels = _labels(rows)
        parts.append("\n".join([f"| field | stat | {' | '.join(labels)} |", "|---|---|" + "---|" * len(labels),
                                *(f"| {r['field']} | {r['stat']} | " + " | ".join(_num(r.get(label)) for label in labels) + " |"
                                  for r in rows)]))
    if failed:
        parts.append("\n".join(f"- {reason}" for reason in failed))
    registered = outcome.registered_model
    if registered:
        parts.append(f"Registered as {registered.name} version {registered.version}"
                     f" ({', '.join(registered.aliases or ['no alias'])}).")
    return "\n\n".join(parts)
