"""A self-contained report.html for the data stages: tables plus matplotlib plots inlined as base64 PNG, in the same
page style as the evaluation report (tasks/common/report_page.py)."""
import difflib
import html
import re

from loraflow.tasks.common.report_page import report_page

TOKEN_AXIS = {"tokenizer": "tokens (the base model's tokenizer)", "approx_words_plus_han_chars": "tokens (approx.: words + Chinese characters)"}


def _png(fig) -> str:
    from loraflow.tasks.common.plots import png_data_uri

    return f'<img alt="plot" src="{png_data_uri(fig, dpi=90)}">'


def _plots(report: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loraflow.tasks.common.plots import integer_ticks, plot_style

    out = []
    splits = report["splits"]
    with plot_style():
        if splits:
            fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3), squeeze=False)
            for ax, (name, stats) in zip(axes[0], splits.items()):
                hist = stats["token_lengths"]
                if hist["counts"]:
                    edges = hist["bins"]
                    ax.bar(edges[:-1], hist["counts"], width=[b - a for a, b in zip(edges[:-1], edges[1:])], align="edge")
                ax.set_title(f"{name}: length (p95 {hist['p95']} tokens)", fontsize=10)
                ax.set_xlabel(TOKEN_AXIS.get(report["token_length_method"], "tokens"))
                ax.set_ylabel("records")
                integer_ticks(ax.yaxis)
            out.append("<h3>Length of each record</h3>" + _png(fig))
            fig, ax = plt.subplots(figsize=(6, 3))
            langs = sorted({lang for s in splits.values() for lang in s["languages"]})
            bottom = [0] * len(splits)
            for lang in langs:
                values = [s["languages"].get(lang, 0) for s in splits.values()]
                ax.bar(list(splits), values, bottom=bottom, label=lang)
                bottom = [b + v for b, v in zip(bottom, values)]
            if langs:
                ax.legend()
            ax.set_title("Language mix (sampled records)", fontsize=10)
            ax.set_ylabel("records")
            integer_ticks(ax.yaxis)
            out.append("<h3>Languages</h3>" + _png(fig))
        reasons = {**{f"removed: {k}": v for k, v in report["removed"].items()},
                   **{f"quarantine: {k}": v for k, v in report["quarantined_by_reason"].items()}}
        if reasons:
            fig, ax = plt.subplots(figsize=(6, 0.4 * len(reasons) + 1))
            ax.barh(list(reasons), list(reasons.values()))
            ax.set_title("Records taken out, by reason", fontsize=10)
            ax.set_xlabel("records (a quarantined record counts once per reason)")
            integer_ticks(ax.xaxis)
            out.append("<h3>Reasons</h3>" + _png(fig))
    return "".join(out)


def _table(markdown: str) -> str:
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            rows.append("</table><table>" if not line.strip() else "")
            continue
        cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _list_table(header: list[str], rows: list[list], raw: set[int] = frozenset()) -> str:
    """A table; cells in `raw` columns are HTML already, every other cell is escaped."""
    if not rows:
        return "<p class='muted'>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw else html.escape(str(c))}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def text_diff(removed: str, kept: str) -> str:
    """Where two near-duplicate texts differ, word by word: the removed record's words struck out, the kept one's marked."""
    a, b = re.findall(r"\S+|\s+", removed), re.findall(r"\S+|\s+", kept)
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            parts.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
    return f"<pre>{''.join(parts)}</pre>"


def _counts(report: dict, markdown: str) -> str:
    parts = [f"<p>Conservation: input {report['input']} = kept {report['kept']} + quarantined {report['quarantined']} + "
             f"removed {report['removed_total']} + review {report['review']} + pilot-skipped {report['pilot_skipped']} &#10003;</p>",
             _table(markdown)]
    reasons = sum(report["quarantined_by_reason"].values())
    if reasons > report["quarantined"]:
        parts.append(f"<p class='muted'>One record can fail several checks: the {report['quarantined']} quarantined records carry "
                     f"{reasons} reasons ({_records_with_several(report.get('quarantined_multi_reason'))}), so the "
                     "reason counts add up to more than the records.</p>")
    if report.get("split_note"):
        parts.append(f"<p><b>Split shares not held:</b> {html.escape(report['split_note'])}</p>")
    return "".join(parts)


def _records_with_several(count) -> str:
    return "1 record has more than one" if count == 1 else f"{'?' if count is None else count} records have more than one"


def _sequence_length(plan: dict | None) -> str:
    """The token-length distribution (chat template included), the length in force and what each choice costs."""
    if not plan:
        return "<p class='muted'>Token lengths were not measured.</p>"
    points = ", ".join(f"{k} {v}" for k, v in plan["percentiles"].items())
    source = (f"chosen from the data (model.max_length: auto keeps {plan['keep_share']:.1%} of the records)"
              if plan["source"] == "auto" else "model.max_length as configured")
    intro = (f"<p>Tokens per record as the model sees them ({plan['n_measured']} of {plan['n_records']} records measured): "
             f"{html.escape(points)}. Training length <b>{plan['max_length']}</b>, {source}; the model's own limit is "
             f"{plan['model_limit']}. Longer than the validation limit {plan['validation_limit']}: {plan['above_limit']} "
             f"records ({plan['above_share']:.1%}), quarantined as max_tokens.</p>")
    return intro + _list_table(
        ["length (tokens)", "keeps records", "tokens per step vs chosen", "est. peak GPU GiB"],
        [[c["length"], f"{c['keeps_share']:.1%}", f"{c['tokens_vs_chosen']:g}x", c["peak_gpu_gib"] if c["peak_gpu_gib"] is not None else "n/a"]
         for c in plan["choices"]])


def render_html(report: dict, markdown: str, pages: dict | None = None) -> str:
    """The whole report page as one HTML string with no external resources (pages: header and record-text HTML)."""
    from loraflow.tasks.common.plots import font_note

    pages = pages or {}
    clusters = report["duplicate_clusters"]
    pairs = report.get("near_duplicate_pairs", [])
    sections = [
        ("counts", "Counts: every input record accounted for", _counts(report, markdown)),
        ("splits", "Splits", _list_table(["split", "records", "augmented", "distinct-1", "distinct-2", "tokens p50", "tokens p95"],
                                         [[n, s["count"], s["augmented"], s["distinct_1"], s["distinct_2"], s["token_lengths"]["p50"],
                                           s["token_lengths"]["p95"]] for n, s in report["splits"].items()])),
        ("length", "Sequence length: tokens per record and what each limit costs", _sequence_length(report.get("sequence_length"))),
        ("plots", "Plots: lengths, languages, reasons", _plots(report) or "<p class='muted'>No splits to plot.</p>"),
        ("duplicates", f"Duplicate clusters: {clusters['count']}, largest {clusters['largest']} (the {len(clusters['top'])} largest shown)",
         _list_table(["kept", "size", "removed"], [[c["kept"], c["size"], ", ".join(r["id"] for r in c["removed"])] for c in clusters["top"]])),
        ("near", f"Near-duplicate pairs removed: {len(pairs)} shown, most similar first (what differs: removed struck out, kept marked)",
         _list_table(["removed", "kept", "similarity", "what differs"],
                     [[p["removed"], p["kept"], p["similarity"], text_diff(p["removed_text"], p["kept_text"])] for p in pairs], {3})),
        ("conflicts", f"Conflicts held for review: {report['conflicts']['groups']} groups ({len(report['conflicts']['top'])} shown)",
         _list_table(["group", "records"], [[c["group"], ", ".join(c["ids"])] for c in report["conflicts"]["top"]])),
    ]
    if pages.get("records"):
        sections.append(("records", "Records taken out, in full", pages["records"]))
    if pages.get("header"):
        sections.append(("run", "Run: what made this report", pages["header"]))
    meta = [f"{report['input']} records in, {report['kept']} kept", *[note for note in [font_note()] if note]]
    return report_page("Data report", meta, sections)
