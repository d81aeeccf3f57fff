"""The data report's record views: a header saying which run and config made it, and the text of every record taken out.

Kept apart from data_report.py and data_report_html.py: these read the run folder's quarantine, removed and review
files and render them; the counts and plots stay where they are.
"""
import html
import json
from datetime import datetime, timezone

SHOWN_PER_SECTION = 200  # records rendered per section; the rest are counted and named by file


def record_text(record) -> str:
    """A record (canonical, a raw input row, or an unparsable line) as the text a person reads."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        return "\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" if isinstance(m, dict) else str(m)
                         for m in record["messages"])
    return json.dumps(record, ensure_ascii=False, indent=1)


SHOWN_VALUE_CHARS = 80  # a failing value or error message is cut here on the summary line (the record is below it)


def _shown(value) -> str:
    # A blank or padded string is quoted, or a whitespace-only answer reads as no value at all.
    plain = isinstance(value, str) and value.strip() == value and value
    text = value if plain else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…"


def reason_text(reason: dict, max_tokens: int | None = None) -> str:
    """One reason as a person reads it: the check, the field, and the failing value or error (`max_tokens: 172 > 160`)."""
    check, field, value = reason.get("check"), reason.get("field"), reason.get("value")
    where = f" ({field})" if field and field != "n_tokens" else ""
    if value is None or value == "":
        return f"{check}{where}"
    if check == "max_tokens" and max_tokens:
        return f"{check}: {value} > {max_tokens}"
    return f"{check}{where}: {_shown(value)}"


def _reasons(row: dict, max_tokens: int | None = None) -> str:
    reasons = row.get("reasons") or []
    return "; ".join(reason_text(r, max_tokens) for r in reasons) or row.get("reason", "")


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary><pre>{html.escape(body)}</pre></details>"


def _section(title: str, items: list[str], total: int, file: str, unit: str) -> str:
    shown = items[:SHOWN_PER_SECTION]
    note = (f"<p>Showing all {total} {unit}.</p>" if len(shown) == total else
            f"<p>Showing {len(shown)} of {total} {unit}; the other {total - len(shown)} are in <code>{html.escape(file)}</code>.</p>")
    body = "".join(shown) if shown else "<p>None.</p>"
    return f"<details class='records'><summary><b>{html.escape(title)}</b> ({total})</summary>{note if total else ''}{body}</details>"


def quarantine_section(quarantine: list[dict], file: str, max_tokens: int | None = None) -> str:
    """Every quarantined record's line, stage, reasons with the failing value or error, and text, each collapsible."""
    items = [_details(f"line {q.get('line', '?')} · {html.escape(str(q.get('stage', '?')))} · {html.escape(_reasons(q, max_tokens))}",
                      record_text(q.get("raw"))) for q in quarantine[:SHOWN_PER_SECTION]]  # only shown ones rendered
    return _section("Quarantined records", items, len(quarantine), file, "records")


def duplicates_section(removed: list[dict], kept_text: dict[str, str], file: str) -> str:
    """Each duplicate cluster: the kept record's text, then each removed record's text with its similarity."""
    clusters: dict[str, list[dict]] = {}
    for row in removed:
        if row.get("duplicate_of"):
            clusters.setdefault(row["duplicate_of"], []).append(row)
    items = []
    for kept, rows in sorted(clusters.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:SHOWN_PER_SECTION]:
        parts = [f"KEPT {kept}\n{kept_text.get(kept, '(text not in the kept splits)')}"]
        parts += [f"REMOVED {r['id']} ({r['reason']}, similarity {r.get('similarity', 1.0)})\n{record_text(r.get('record'))}" for r in rows]
        items.append(_details(f"kept {html.escape(kept)} · {len(rows)} removed", "\n\n".join(parts)))
    return _section("Duplicate clusters", items, len(clusters), file, "clusters")


def other_removals_section(removed: list[dict], file: str) -> str:
    """Records removed for other reasons than duplication (quality filters, empty turns), with their text."""
    rows = [r for r in removed if not r.get("duplicate_of")]
    items = [_details(f"{html.escape(str(r['id']))} · {html.escape(r['reason'])}: {html.escape(str(r.get('detail', '')))}",
                      record_text(r.get("record"))) for r in rows[:SHOWN_PER_SECTION]]
    return _section("Other removed records", items, len(rows), file, "records")


def conflicts_section(review: list[dict], file: str) -> str:
    """Each group of same-prompt records with different answers, all answers shown together."""
    groups: dict[str, list[dict]] = {}
    for row in review:
        groups.setdefault(row.get("review", {}).get("group", row["id"]), []).append(row)
    items = [_details(f"group {html.escape(group)} · {len(rows)} records",
                      "\n\n".join(f"{r['id']}\n{record_text(r)}" for r in rows)) for group, rows in list(groups.items())[:SHOWN_PER_SECTION]]
    return _section("Conflicting answers held for review", items, len(groups), file, "groups")


def report_header(header: dict) -> str:
    """Which run, when, from which input and config: the lines at the top of the report."""
    rows = [("generated", header.get("generated") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    rows += [(k, str(v)) for k, v in header.items() if k not in ("generated", "config") and v]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    config = header.get("config")
    shown = _details("data-stage config", json.dumps(config, ensure_ascii=False, indent=1)) if config else ""
    return f"<table class='header'>{table}</table>{shown}"


def record_views(quarantine: list[dict], removed: list[dict], review: list[dict], kept_records: list[dict], files: dict,
                 max_tokens: int | None = None) -> str:
    """All four record sections, in the order a person checks them."""
    kept_text = {str(r.get("id")): record_text(r) for r in kept_records}
    return (quarantine_section(quarantine, files["quarantine"], max_tokens) + duplicates_section(removed, kept_text, files["removed"])
            + other_removals_section(removed, files["removed"]) + conflicts_section(review, files["review"]))
