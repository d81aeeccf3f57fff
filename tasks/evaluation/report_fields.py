"""The evaluation report's field sections: per-field scores beside the trivial baselines, confusion matrices, and the
worst cases with their wrong fields marked (the request only, not the system prompt every case shares)."""
from html import escape

from loraflow.schemas.results.evaluation import CategoricalScores, EvaluationSummary, FieldCheck, ModelEvaluation
from loraflow.tasks.common.plots import confusion_matrix, grouped_bars

REPORT_LABELS = ("base", "candidate", "champion", "classical", "majority", "stratified")
_BASELINE_KIND = {"classical": "TF-IDF + logistic regression", "majority": "trivial baseline", "stratified": "trivial baseline"}
_CSS = """
td.wrong{background:#fdecea;color:#c0392b;font-weight:600}td.right{color:#1e8449}.fieldgrid{display:flex;flex-wrap:wrap;gap:14px}
.fieldgrid img{max-width:520px}table.diff{width:auto;margin:0}table.diff td{padding:2px 6px;border:0}
"""


def _cell(value: float | None, best: bool = False) -> str:
    text = "–" if value is None else f"{value:.3f}"
    return f"<td class='num'>{'<b>' + text + '</b>' if best else text}</td>"


def _field_rows(labels: dict[str, ModelEvaluation], name: str, keys: tuple[str, ...]) -> list[str]:
    shown = [label for label in REPORT_LABELS if label in labels and name in labels[label].fields]
    best = {key: max(getattr(labels[label].fields[name], key) for label in shown) for key in keys}
    rows = []
    for label in shown:
        report = labels[label].fields[name]
        cells = "".join(_cell(getattr(report, key), getattr(report, key) == best[key]) for key in keys)
        if report.kind == "categorical":
            cells += f"<td>{escape(str(report.top_predicted))} ({report.top_predicted_share:.0%})</td>"
        kind = f" <span class='muted'>({_BASELINE_KIND[label]})</span>" if label in _BASELINE_KIND else ""
        rows.append(f"<tr><td>{escape(label)}{kind}</td>{cells}</tr>")
    return rows


def _per_class_table(report: CategoricalScores) -> str:
    rows = "".join(
        f"<tr><td>{escape(cls)}</td>{_cell(s.precision)}{_cell(s.recall)}{_cell(s.f1)}"
        f"<td class='num'>{s.support}</td><td class='num'>{s.predicted}</td></tr>"
        for cls, s in report.per_class.items())
    return ("<table><tr><th>class</th><th class='num'>precision</th><th class='num'>recall</th><th class='num'>F1</th>"
            f"<th class='num'>in reference</th><th class='num'>answered</th></tr>{rows}</table>")


def _distribution_chart(name: str, report: CategoricalScores) -> str:
    values = list(dict.fromkeys([*report.reference_distribution, *report.predicted_distribution]))
    series = {"reference": [report.reference_distribution.get(v, 0) / report.n for v in values],
              "candidate": [report.predicted_distribution.get(v, 0) / report.n for v in values]}
    return grouped_bars(values, series, f"{name}: share of answers per value", ylabel="share of test cases")


def _field_block(labels: dict[str, ModelEvaluation], name: str, checks: dict[str, FieldCheck]) -> str:
    report = labels["candidate"].fields[name]
    if report.kind != "categorical":
        head = "<tr><th>model</th><th class='num'>exact match</th><th class='num'>match ignoring punctuation/spaces</th></tr>"
        return f"<h3>{escape(name)} <span class='tag'>free text</span></h3><table>{head}{''.join(_field_rows(labels, name, ('exact_match', 'normalized_match')))}</table>"
    head = ("<tr><th>model</th><th class='num'>accuracy</th><th class='num'>macro-F1</th>"
            "<th>most frequent answer (share)</th></tr>")
    check = checks.get(name)
    verdict = ""
    if check:
        collapsed = "<span class='neg'>collapsed</span>" if check.collapsed else "<span class='pos'>not collapsed</span>"
        beat = "".join(f"macro-F1 vs {other} {versus.diff:+.3f}, 95% CI [{versus.ci_low:+.3f}, {versus.ci_high:+.3f}]; "
                       for other, versus in (("classical baseline", check.vs_classical),
                                             ("majority class", check.vs_majority)) if versus)
        verdict = (f"<p class='muted'>{beat}{collapsed}: the most frequent answer is {check.top_predicted_share:.0%} of the "
                   f"candidate's answers (reference's top value {check.top_reference_share:.0%}, limit {check.collapse_limit:.0%}).</p>")
    confusion = report.confusion
    matrix = (f"<img alt='{escape(name)} confusion matrix' src='{confusion_matrix(confusion.labels, confusion.matrix, confusion.classes, f'{name}: candidate confusion matrix')}'>"
              if confusion else "")
    images = matrix + f"<img alt='{escape(name)} distribution' src='{_distribution_chart(name, report)}'>"
    return (f"<h3>{escape(name)} <span class='tag'>categorical, {len(report.per_class)} classes</span></h3>"
            f"<table>{head}{''.join(_field_rows(labels, name, ('accuracy', 'macro_f1')))}</table>{verdict}"
            f"<div class='fieldgrid'>{images}</div><details><summary>per class (candidate)</summary>{_per_class_table(report)}</details>")


def fields_section(summary: EvaluationSummary) -> str | None:
    """Per answer field: every model and baseline side by side, the candidate's confusion matrix and distribution.

    None when the answers are not JSON objects (no field reports).
    """
    labels = summary.labels
    names = list(summary.candidate.fields)
    if not names:
        return None
    checks = summary.field_checks
    intro = ("<p class='muted'>Each answer field scored on its own. <b>classical</b> is TF-IDF n-grams + logistic regression "
             "fitted on the train split's requests (categorical fields only): a fine-tune that does not beat it may not be "
             "worth serving. <b>majority</b> answers every case with the field's most frequent training value, "
             "<b>stratified</b> draws values at random in the training proportions: a model that learned the task must "
             "beat both clearly. Bold: the best value in each column.</p>")
    return f"<style>{_CSS}</style>" + intro + "".join(_field_block(labels, name, checks) for name in names)


def request_text(messages: list[dict]) -> str:
    """What the user asked: the user turns only (the system prompt is the same for every case and hides the difference)."""
    turns = [m for m in messages if m.get("role") == "user" and m.get("content")]
    if not turns:
        turns = [m for m in messages if m.get("content")]
    return "\n\n".join(str(m["content"]) for m in turns)


def render_field_diff(fields: dict | None) -> str:
    """A small table of the answer's fields, the wrong ones marked red with the reference value beside them."""
    if not fields:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td>"
        + (f"<td class='right'>{escape(o['prediction'])}</td><td></td>" if o["prediction"] == o["reference"] else
           f"<td class='wrong'>{escape(o['prediction'])}</td><td class='muted'>should be {escape(o['reference'])}</td>")
        + "</tr>" for name, o in fields.items())
    return f"<table class='diff'>{rows}</table>"
