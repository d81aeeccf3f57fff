"""A self-contained report.html for the data stages: tables plus matplotlib plots inlined as base64 PNG."""
import html


def _png(fig) -> str:
    from loraflow.tasks.common.plots import png_data_uri

    return f'<img alt="plot" src="{png_data_uri(fig, dpi=90)}">'


def _plots(report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    splits = report["splits"]
    if splits:
        fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3), squeeze=False)
        for ax, (name, stats) in zip(axes[0], splits.items()):
            hist = stats["token_lengths"]
            if hist["counts"]:
                edges = hist["bins"]
                ax.bar(edges[:-1], hist["counts"], width=[b - a for a, b in zip(edges[:-1], edges[1:])], align="edge")
            ax.set_title(f"{name}: tokens (p95 {hist['p95']})")
            ax.set_xlabel(report["token_length_method"])
        out.append("<h2>Token lengths</h2>" + _png(fig))
        fig, ax = plt.subplots(figsize=(6, 3))
        langs = sorted({lang for s in splits.values() for lang in s["languages"]})
        bottom = [0] * len(splits)
        for lang in langs:
            values = [s["languages"].get(lang, 0) for s in splits.values()]
            ax.bar(list(splits), values, bottom=bottom, label=lang)
            bottom = [b + v for b, v in zip(bottom, values)]
        if langs:
            ax.legend()
        ax.set_title("Language mix (sampled records)")
        out.append("<h2>Languages</h2>" + _png(fig))
    reasons = {**{f"removed: {k}": v for k, v in report["removed"].items()},
               **{f"quarantine: {k}": v for k, v in report["quarantined_by_reason"].items()}}
    if reasons:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(reasons) + 1))
        ax.barh(list(reasons), list(reasons.values()))
        ax.set_title("Records taken out, by reason")
        out.append("<h2>Reasons</h2>" + _png(fig))
    return out


def _table(markdown: str) -> str:
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            rows.append("</table><table>" if not line.strip() else "")
            continue
        cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _list_table(title: str, header: list[str], rows: list[list]) -> str:
    if not rows:
        return f"<h2>{title}</h2><p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


def _sequence_length(plan: dict | None) -> list[str]:
    """The token-length distribution (chat template included), the length in force and what each choice costs."""
    if not plan:
        return []
    points = ", ".join(f"{k} {v}" for k, v in plan["percentiles"].items())
    source = ("chosen from the data (model.max_length: auto keeps " f"{plan['keep_share']:.1%} of the records)"
              if plan["source"] == "auto" else "model.max_length as configured")
    intro = (f"<p>Tokens per record as the model sees them ({plan['n_measured']} of {plan['n_records']} records measured): "
             f"{html.escape(points)}. Training length <b>{plan['max_length']}</b>, {source}; the model's own limit is "
             f"{plan['model_limit']}. Longer than the validation limit {plan['validation_limit']}: {plan['above_limit']} "
             f"records ({plan['above_share']:.1%}), quarantined as max_tokens.</p>")
    return ["<h2>Sequence length</h2>", intro, _list_table(
        "What each length costs", ["length (tokens)", "keeps records", "tokens per step vs chosen", "est. peak GPU GiB"],
        [[c["length"], f"{c['keeps_share']:.1%}", f"{c['tokens_vs_chosen']:g}x", c["peak_gpu_gib"] if c["peak_gpu_gib"] is not None else "n/a"]
         for c in plan["choices"]])]


def render_html(report: dict, markdown: str, pages: dict | None = None) -> str:
    """The whole report page as one HTML string with no external resources (pages: header and record-text HTML)."""
    pages = pages or {}
    parts = ["<h1>Data report</h1>", pages.get("header", ""),
             f"<p>Conservation: input {report['input']} = kept {report['kept']} + quarantined {report['quarantined']} + "
             f"removed {report['removed_total']} + review {report['review']} + pilot-skipped {report['pilot_skipped']} "
             f"&#10003;</p>", "<h2>Counts</h2>", _table(markdown)]
    if report.get("split_note"):
        parts.append(f"<p><b>Split shares not held:</b> {html.escape(report['split_note'])}</p>")
    parts.append(_list_table("Splits", ["split", "records", "augmented", "distinct-1", "distinct-2", "tokens p50", "tokens p95"],
                             [[n, s["count"], s["augmented"], s["distinct_1"], s["distinct_2"], s["token_lengths"]["p50"],
                               s["token_lengths"]["p95"]] for n, s in report["splits"].items()]))
    parts += _sequence_length(report.get("sequence_length"))
    parts += _plots(report)
    clusters = report["duplicate_clusters"]
    parts.append(_list_table(f"Duplicate clusters ({clusters['count']}, largest {clusters['largest']}; "
                             f"showing the {len(clusters['top'])} largest)", ["kept", "size", "removed"],
                             [[c["kept"], c["size"], ", ".join(r["id"] for r in c["removed"])] for c in clusters["top"]]))
    pairs = report.get("near_duplicate_pairs", [])
    parts.append(_list_table(f"Near-duplicate pairs removed ({len(pairs)} shown, most similar first)",
                             ["removed", "kept", "similarity", "removed text", "kept text"],
                             [[p["removed"], p["kept"], p["similarity"], p["removed_text"], p["kept_text"]] for p in pairs]))
    parts.append(_list_table(f"Conflicts held for review ({report['conflicts']['groups']} groups; showing "
                             f"{len(report['conflicts']['top'])})", ["group", "records"],
                             [[c["group"], ", ".join(c["ids"])] for c in report["conflicts"]["top"]]))
    if pages.get("records"):
        parts += ["<h2>The records taken out, in full</h2>", pages["records"]]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%}"
             "details.records{margin:.6em 0;padding:.3em .6em;border:1px solid #ddd;border-radius:4px}"
             "details details{margin:.2em 0 .2em 1em}pre{white-space:pre-wrap;background:#f5f5f5;padding:6px;margin:.2em 0}"
             "table.header th{background:#f0f0f0}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>loraflow data report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
