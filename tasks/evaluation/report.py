"""The evaluation report: one self-contained HTML page (inline CSS, base64 plots) from a run folder's eval outputs."""
import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.plots import LABEL_COLORS, font_note, grouped_bars, horizontal_counts, loss_curves
from loraflow.tasks.common.report_page import report_page
from loraflow.tasks.evaluation.report_fields import render_field_diff, fields_section, request_text
from loraflow.tasks.evaluation.field_metrics import per_example_metric
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.tracking.run_extras import log_to_run, read_run_info
from loraflow.schemas.results.evaluation import EvaluationSummary, ModelEvaluation

LABEL_ORDER = ("base", "candidate", "champion", "classical", "majority", "stratified")
WORST_FALLBACK = 10  # worst cases shown from predictions.jsonl when no badcase analysis ran



def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def _signed(value, digits: int = 3) -> str:
    if value is None:
        return "<td class='num'>–</td>"
    css = "neg" if value < -1e-9 else "pos" if value > 1e-9 else ""
    return f"<td class='num {css}'>{value:+.{digits}f}</td>"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table; cells that already are <td> elements pass through; numeric columns (default: all but the first) align right."""
    numeric = set(range(1, len(headers))) if numeric is None else numeric
    head = "".join(f"<th class='{'num' if i in numeric else ''}'>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td class='{'num' if i in numeric else ''}'>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _read_json(path: Path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LoraflowError(f"{path}:{error.lineno} is not valid JSON ({error.msg}); re-run the step that writes it.") from error


def _label(name: str) -> str:
    return f"<span class='swatch' style='background:{LABEL_COLORS.get(name, '#888')}'></span>{escape(name)}"


def _decision_section(promotion: dict | None) -> str:
    if promotion is None:
        return "<p class='muted'>No promotion decision yet (eval/promotion.json not found).</p>"
    promote = bool(promotion.get("promote"))
    reasons = [str(r) for r in promotion.get("reasons", [])]
    items = "".join(f"<li class='{escape(r.split(':', 1)[0])}'>{escape(r)}</li>" for r in reasons)
    verdict = "PROMOTE: the candidate becomes the champion" if promote else "DO NOT PROMOTE: the candidate stays a candidate"
    failed = sum(r.startswith("fail:") for r in reasons)
    # The verdict stays in view; the gate's checks (a dozen lines) open on a click.
    return (f"<div class='banner {'promote' if promote else 'reject'}'>{verdict}</div>"
            f"<details><summary>The gate's {len(reasons)} checks ({failed} failed)</summary><ul class='reasons'>{items}</ul></details>")


def _metrics_section(summary: EvaluationSummary) -> str:
    labels, success = summary.labels, summary.success_metric
    metric = success.metric
    names = [k for k in summary.candidate.metrics if k != "n" and not k.startswith("field.")]
    names.sort(key=lambda k: k != metric)  # the success metric first, the rest in evaluation's order
    series = {label: [labels[label].metrics.get(k) for k in names] for label in LABEL_ORDER if label in labels}
    chart = grouped_bars(names, series, "Overall metrics on the test split", threshold=(metric, success.threshold) if metric in names else None)
    rows = [[_label(label), *[_num(labels[label].metrics.get(k)) for k in names], _num(labels[label].metrics.get("n"))] for label in series]
    html = f"<img alt='metric bars' src='{chart}'>" + _table(["model", *names, "n"], rows)
    if summary.criteria:
        crit_rows = [[f"{escape(c.metric)} {'≥' if c.higher_is_better else '≤'} {c.threshold:g}", _num(c.value),
                      "<td class='pos'>met</td>" if c.met else "<td class='neg'>not met</td>"] for c in summary.criteria]
        html += "<h3>Task-card success criteria</h3>" + _table(["criterion", "candidate", "result"], crit_rows, {1})
    comparisons = summary.comparisons
    if comparisons:
        comp_rows = [[f"candidate − {escape(other)}", _num(c.candidate_mean), _num(c.other_mean), _signed(c.diff),
                      f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]", _num(c.p_value), _num(c.n)] for other, c in comparisons.items()]
        html += f"<h3>Paired bootstrap on {escape(str(metric))}</h3>" + _table(["comparison", "candidate", "other", "difference", "95% CI", "p", "n"], comp_rows)
    return html


def _slice_groups(result: ModelEvaluation) -> dict:
    groups = dict(result.by_slice)
    groups.setdefault("language", result.by_language)
    return groups


def _slices_section(labels: dict[str, ModelEvaluation], metric: str, reference: str | None) -> str:
    shown = [label for label in LABEL_ORDER if label in labels]
    per_label = {label: _slice_groups(labels[label]) for label in shown}
    html = ""
    for field, values in sorted(per_label.get("candidate", {}).items()):
        if not values:
            continue
        keys = list(values)
        rows = []
        for value in keys:
            cells = [per_label[label].get(field, {}).get(value, {}).get(metric) for label in shown]
            cand = values[value].get(metric)
            ref = per_label.get(reference, {}).get(field, {}).get(value, {}).get(metric) if reference else None
            delta = cand - ref if cand is not None and ref is not None else None
            rows.append([escape(value), _num(values[value].get("n")), *[_num(c) for c in cells], _signed(delta)])
        headers = [field, "n", *shown, f"Δ vs {reference}" if reference else "Δ"]
        chart = grouped_bars(keys, {label: [per_label[label].get(field, {}).get(k, {}).get(metric) for k in keys] for label in shown},
                             f"{metric} by {field}")
        html += f"<h3>By {escape(field)}</h3>" + _table(headers, rows) + f"<img alt='{escape(field)} bars' src='{chart}'>"
    return html or "<p class='muted'>No per-slice metrics in metrics.json.</p>"


def _training_section(folder: RunFolder) -> str:
    history = _read_json(folder.train / "log_history.json")
    if not history:
        return "<p class='muted'>No training log (train/log_history.json not found).</p>"
    chart = loss_curves(history)
    if chart is None:
        return "<p class='muted'>train/log_history.json has no loss entries.</p>"
    final = [e for e in history if "train_runtime" in e or "train_loss" in e]
    note = (f"<p class='muted'>Train loss averaged over the whole run (every epoch) {_num(final[-1].get('train_loss'))}, "
            f"runtime {_num(final[-1].get('train_runtime'), 1)} s.</p>") if final else ""
    evals = [e for e in history if "eval_loss" in e]
    if evals:
        rows = [[_num(e.get("step")), _num(e.get("epoch"), 2), _num(e["eval_loss"], 4)] for e in evals]
        note += f"<h3>Validation loss at {len(evals)} points of the run</h3>" + _table(["step", "epoch", "validation loss"], rows)
    return f"<img alt='loss curves' src='{chart}'>" + note


def _raters_section(folder: RunFolder) -> str:
    human, judge = _read_json(folder.eval / "human_eval.json"), _read_json(folder.eval / "llm_judge.json")
    if not human and not judge:
        return "<p class='muted'>No human or LLM-judge ratings (run <code>loraflow human-eval</code> / <code>loraflow judge</code>).</p>"
    html = ""
    if human:
        rows = [[escape(d), _num(s["mean"], 2), f"[{_num(s['ci_low'], 2)}, {_num(s['ci_high'], 2)}]", _num(s.get("alpha_ordinal"), 2)]
                for d, s in human["dimensions"].items()]
        html += (f"<h3>Human ratings: {human['n_ratings']} ratings of {human['n_cases']} cases by {len(human['raters'])} rater(s)</h3>"
                 + _table(["dimension", "mean (1-5)", "95% CI", "Krippendorff α (ordinal)"], rows))
    if judge:
        agreement = judge.get("agreement") or {}
        rows = [[escape(d), _num(s["mean"], 2), f"[{_num(s['ci_low'], 2)}, {_num(s['ci_high'], 2)}]",
                 _num((agreement.get(d) or {}).get("mae"), 2), _num((agreement.get(d) or {}).get("alpha_interval"), 2)]
                for d, s in judge["dimensions"].items()]
        html += (f"<h3>LLM judge {escape(judge['model'])} (rubric {escape(judge['rubric_version'])}): {judge['n_scored']} cases,"
                 f" {judge['n_failed']} unusable replies</h3>" + _table(["dimension", "mean (1-5)", "95% CI", "MAE vs humans", "α vs humans"], rows))
    return html


def _text_cell(text: str, limit: int = 400) -> str:
    text = str(text or "")
    short = escape(text[:limit] + ("…" if len(text) > limit else ""))
    return f"<td class='text'><pre>{short}</pre></td>"


def _worst_section(folder: RunFolder, metric: str, higher_is_better: bool) -> str:
    metric = per_example_metric(metric)  # corpus-level field scores rank cases by their per-example accuracy
    path = folder.eval / "badcases.jsonl"
    html = ""
    if path.exists():
        cases = read_jsonl(path)
        counts: dict[str, int] = {}
        for case in cases:
            counts[case.get("cause", "?")] = counts.get(case.get("cause", "?"), 0) + 1
        if counts:
            html += f"<img alt='causes' src='{horizontal_counts(dict(sorted(counts.items(), key=lambda kv: -kv[1])), 'Probable cause of the worst cases')}'>"
    else:
        predictions = folder.eval / "predictions.jsonl"
        rows = [r for r in read_jsonl(predictions) if metric in (r.get("scores") or {})] if predictions.exists() else []
        cases = sorted(rows, key=lambda r: r["scores"][metric] if higher_is_better else -r["scores"][metric])[:WORST_FALLBACK]
        html += "<p class='muted'>No badcase analysis (eval/badcases.jsonl not found): lowest-scoring predictions shown.</p>"
    if not cases:
        return html + "<p class='muted'>No bad cases.</p>"
    rows = []
    for case in cases:
        score = (case.get("score") or case.get("scores") or {}).get(metric)
        cause = f"<span class='tag'>{escape(case['cause'])}</span><br><span class='muted'>{escape(case.get('detail', ''))}</span>" if case.get("cause") else "–"
        diff = render_field_diff(case.get("fields"))
        answer = f"<td class='text'>{diff}<pre>{escape(str(case.get('prediction') or ''))}</pre></td>" if diff else _text_cell(case.get("prediction"))
        rows.append([escape(str(case.get("id"))), _num(score), f"<td>{cause}</td>", _text_cell(request_text(case.get("messages") or [])),
                     _text_cell(case.get("reference")), answer])
    return html + _table(["id", metric, "probable cause", "request", "reference", "answer (wrong fields in red)"], rows, {1})


def write_eval_report(run_dir: str) -> str:
    """Write RUN_DIR/eval/report.html (metric bars, slices, loss curves, ratings, worst cases, promotion) and return its path."""
    folder = RunFolder(run_dir)
    path = folder.eval / "metrics.json"
    data = _read_json(path)
    if data is None:
        raise LoraflowError(f"{path} does not exist; run the evaluation first (`loraflow run CONFIG --out {run_dir}`).")
    if "candidate" not in (data.get("labels") or {}):
        raise LoraflowError(f"{path} has no 'candidate' under labels; re-run the evaluation to rewrite it.")
    try:
        summary = EvaluationSummary.model_validate(data)
    except ValueError as error:  # pydantic's ValidationError: the field, then what is wrong with it
        detail = ": ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise LoraflowError(f"{path} does not read as an evaluation summary ({detail}); re-run the evaluation to rewrite it.") from error
    labels, success = summary.labels, summary.success_metric
    metric = success.metric
    reference = summary.slices.reference or ("champion" if "champion" in labels else "base" if "base" in labels else None)
    info = read_run_info(folder.root)
    meta = [f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}", f"success metric {metric} {'≥' if success.higher_is_better else '≤'} {success.threshold:g}"]
    if info.get("mlflow_run_id"):
        meta.append(f"MLflow run {info['mlflow_run_id']}")
    fields = fields_section(summary)
    # The per-field table against the baselines leads; the gate's decision follows it, its checks collapsed.
    sections = [
        *([("fields", "Per answer field: models and trivial baselines", fields)] if fields else []),
        ("decision", "Promotion decision", _decision_section(_read_json(folder.eval / "promotion.json"))),
        ("metrics", "Metrics: models and baselines (BLEU/ROUGE are secondary for structured answers)" if fields else
         "Metrics: base / candidate / champion", _metrics_section(summary)),
        ("slices", f"Per slice ({metric})", _slices_section(labels, metric, reference)),
        ("training", "Training", _training_section(folder)),
        ("ratings", "Human and LLM-judge ratings", _raters_section(folder)),
        ("worst", "Worst cases", _worst_section(folder, metric, success.higher_is_better)),
    ]
    meta += [note for note in [font_note()] if note]
    page = report_page(f"Evaluation report: {folder.root.resolve().name}", meta, sections)
    path = folder.eval / "report.html"
    path.write_text(page, encoding="utf-8")
    return str(path)


def log_eval_report(run_dir: str, report_path: str) -> str | None:
    """Attach the report to the run's MLflow run (artifact report/report.html); returns the run id or None."""
    return log_to_run(run_dir, files={"report": report_path})
