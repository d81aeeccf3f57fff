"""The data report: merged quarantine/review files, report.json with a conservation proof, HTML, metrics."""
import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from loraflow.schemas.results import DataReport, DataStageResult, Splits, TokenLengths
from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.jsonl import iter_jsonl, write_jsonl
from loraflow.tasks.data.quality import detect_language
from loraflow.tasks.data.streaming.io import count_newlines, rows_at

SAMPLE = 20_000  # records per split used for histograms and diversity; counts always cover everything
_HAN = re.compile(r"[\u3400-\u9fff]")


def _by_stage(stage_results: list[DataStageResult | Splits]) -> dict[str, DataStageResult | Splits]:
    return {r.stage: r for r in stage_results}


def _counts(stages: dict[str, DataStageResult | Splits], name: str) -> dict:
    return stages[name].counts if name in stages else {}


def _rows(path: str | None) -> list[dict]:
    return list(iter_jsonl(path)) if path and Path(path).is_file() else []


def _units(text: str, language: str) -> list[str]:
    return [c for c in text if not c.isspace()] if language == "zh" else text.lower().split()


def approx_tokens(text: str) -> int:
    """A tokenizer-free length: words plus Chinese characters (used when no tokenizer is given)."""
    han = len(_HAN.findall(text))
    return han + len(_HAN.sub(" ", text).split())


def distinct_n(texts: list[str], languages: list[str], n: int) -> float:
    """Unique n-grams over all n-grams of the texts (words for English, characters for Chinese)."""
    total, seen = 0, set()
    for text, lang in zip(texts, languages):
        units = _units(text, lang)
        grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else 0.0


def _histogram(lengths: list[int]) -> dict:
    if not lengths:
        return {"bins": [], "counts": [], "mean": 0, "p50": 0, "p95": 0, "max": 0}
    arr = np.asarray(lengths)
    counts, edges = np.histogram(arr, bins=min(30, max(1, len(set(lengths)))))
    return {"bins": [round(float(e), 1) for e in edges], "counts": counts.tolist(), "mean": round(float(arr.mean()), 1),
            "p50": int(np.percentile(arr, 50)), "p95": int(np.percentile(arr, 95)), "max": int(arr.max())}


def split_stats(path: str, tokenizer) -> dict:
    """Count, language mix, augmented share, token-length histogram and distinct-n of one split file."""
    # Streamed: only the sampled records are parsed (a split can hold millions); the same sample as sampling the list.
    n = count_newlines(path) if path and Path(path).is_file() else 0
    picked = list(range(n)) if n <= SAMPLE else random.Random(0).sample(range(n), SAMPLE)
    by_index = dict(rows_at(path, sorted(picked))) if n else {}
    sample = [by_index[i] for i in picked]
    del by_index
    langs = [r["metadata"].get("language") or detect_language(r["messages"][-1]["content"]) for r in sample]
    if tokenizer is not None:
        from loraflow.tasks.data.validate import count_tokens

        lengths = [n or 0 for n in count_tokens(tokenizer, [r["messages"] for r in sample])]
    else:
        lengths = [sum(approx_tokens(m["content"]) for m in r["messages"]) for r in sample]
    answers = [r["messages"][-1]["content"] for r in sample]
    return {"count": n, "augmented": _augmented(path) if n else 0,
            "sampled": len(sample), "languages": dict(Counter(langs)),
            "token_lengths": _histogram(lengths), "distinct_1": distinct_n(answers, langs, 1),
            "distinct_2": distinct_n(answers, langs, 2)}


def _augmented(path: str) -> int:
    """Records of a split file made by augmentation (only lines naming augment_method are parsed)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if b'"augment_method"' in line and orjson.loads(line)["metadata"].get("augment_method"))


def duplicate_clusters(removed: list[dict], top: int = 10) -> dict:
    """Clusters of a kept record and the duplicates removed in its favour."""
    clusters: dict[str, list[dict]] = {}
    for row in removed:
        if row.get("duplicate_of"):
            clusters.setdefault(row["duplicate_of"], []).append(row)
    largest = sorted(clusters.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    return {"count": len(clusters), "records_removed": sum(len(v) for v in clusters.values()),
            "largest": max((len(v) + 1 for v in clusters.values()), default=0),
            "top": [{"kept": k, "size": len(v) + 1, "removed": [{"id": r["id"], "reason": r["reason"],
                                                                  "similarity": r.get("similarity")} for r in v]}
                    for k, v in largest]}


def near_duplicate_pairs(removed: list[dict], top: int = 50, chars: int = 300) -> list[dict]:
    """The near-duplicate pairs clean removed, most similar first, with both records' texts (system turns left out),
    so a reader can judge each decision."""
    def text(messages: list[dict]) -> str:
        joined = " | ".join(f"{m['role']}: {m['content']}" for m in messages if m["role"] != "system")
        return joined if len(joined) <= chars else joined[:chars] + "..."

    rows = [r for r in removed if r["reason"] == "near_duplicate" and r.get("duplicate_of_messages")]
    rows.sort(key=lambda r: (-(r.get("similarity") or 0.0), r["id"]))
    return [{"removed": r["id"], "kept": r["duplicate_of"], "similarity": r.get("similarity"),
             "removed_text": text(r["record"]["messages"]), "kept_text": text(r["duplicate_of_messages"])} for r in rows[:top]]


def conflicts(review: list[dict], top: int = 10) -> dict:
    """Groups of same-prompt records with different answers, held for a human."""
    groups: dict[str, list[str]] = {}
    for row in review:
        groups.setdefault(row.get("review", {}).get("group", row["id"]), []).append(row["id"])
    return {"groups": len(groups), "records": len(review), "top": [{"group": g, "ids": ids} for g, ids in list(groups.items())[:top]]}


def conservation(counts: dict[str, dict]) -> dict:
    """input == kept + quarantined + removed + review (+ pilot_skipped); raises when it does not hold (a bug).

    Args:
        counts: each stage's counts by stage name (ingest, validate, clean, split).
    """
    ingest, validate = counts.get("ingest", {}), counts.get("validate", {})
    clean, split = counts.get("clean", {}), counts.get("split", {})
    first = ingest or validate or clean or split
    parts = {"input": first.get("input", 0),
             "quarantined": ingest.get("quarantined", 0) + validate.get("quarantined", 0),
             "removed": clean.get("removed_total", 0), "review": clean.get("review", 0),
             "pilot_skipped": validate.get("pilot_skipped", 0)}
    if split:
        parts["kept"] = split["input"]
    else:
        parts["kept"] = (clean or validate or ingest).get("kept", 0)
    total = parts["kept"] + parts["quarantined"] + parts["removed"] + parts["review"] + parts["pilot_skipped"]
    if total != parts["input"]:
        raise RuntimeError(f"record conservation violated: input {parts['input']} != kept {parts['kept']} + quarantined "
                           f"{parts['quarantined']} + removed {parts['removed']} + review {parts['review']} + pilot_skipped "
                           f"{parts['pilot_skipped']} = {total}")
    if clean and validate and clean.get("input") != validate.get("kept"):
        raise RuntimeError(f"clean read {clean.get('input')} records but validation kept {validate.get('kept')}")
    return {**parts, "holds": True}


def _markdown(report: dict) -> str:
    lines = ["| count | records |", "|---|---:|", f"| kind | {report.get('kind', 'sft')} |"]
    for key in ("input", "kept", "quarantined", "review", "pilot_skipped", "augmented"):
        lines.append(f"| {key} | {report[key]} |")
    for reason, n in sorted(report["removed"].items()):
        lines.append(f"| removed: {reason} | {n} |")
    for name, stats in report["splits"].items():
        lines.append(f"| split: {name} | {stats['count']} |")
    lines.append(f"| leakage moves | {report['leakage_moves']} |")
    lines.append(f"| records split as duplicate/group units | {report['split_clustered_records']} |")
    if report["quarantined_by_reason"]:
        lines += ["", "| quarantine reason | records |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(report["quarantined_by_reason"].items())]
        if report.get("quarantined_multi_reason"):
            lines += ["", f"One record can fail several checks: {report['quarantined_multi_reason']} of the {report['quarantined']} "
                          f"quarantined records have more than one reason, so the reasons add up to "
                          f"{sum(report['quarantined_by_reason'].values())}."]
    if report["split_note"]:
        lines += ["", f"Split shares not held: {report['split_note']}"]
    return "\n".join(lines)


def _metrics(report: dict) -> dict[str, float]:
    metrics = {f"data.{k}": float(report[k]) for k in ("input", "kept", "quarantined", "review", "augmented", "leakage_moves")}
    metrics.update({f"data.removed.{k}": float(v) for k, v in report["removed"].items()})
    for name, stats in report["splits"].items():
        metrics[f"data.{name}"] = float(stats["count"])
        metrics[f"data.{name}.distinct_2"] = float(stats["distinct_2"])
        metrics[f"data.{name}.tokens_p95"] = float(stats["token_lengths"]["p95"])
    return metrics


def write_data_report(out_dir: str, stage_results: list[DataStageResult | Splits], tokenizer_path: str | None,
                      header: dict | None = None, lengths: TokenLengths | None = None) -> DataReport:
    """Write quarantine.jsonl, review.jsonl, report.json and report.html; return paths, markdown and metrics.

    Args:
        header: what made this report (flow run, input file and hash, task, data-stage config), shown at its top.
        lengths: the token-length plan (loraflow.tasks.data.token_lengths): distribution, chosen length, costs.
    """
    from loraflow.tasks.data.report_html import render_html
    from loraflow.tasks.data.validate import load_tokenizer

    stages = _by_stage(stage_results)
    data = RunFolder(out_dir).data
    data.mkdir(parents=True, exist_ok=True)
    ingest, validate, clean = stages.get("ingest"), stages.get("validate"), stages.get("clean")
    quarantine = _rows(ingest and ingest.quarantine) + _rows(validate and validate.quarantine)
    write_jsonl(data / "quarantine.jsonl", quarantine)
    review = _rows(clean and clean.review)
    write_jsonl(data / "review.jsonl", review)
    removed = _rows(clean and clean.removed)
    parts = conservation({name: result.counts for name, result in stages.items()})
    tokenizer = load_tokenizer(tokenizer_path)
    split = stages.get("split")
    splits = {name: split_stats(path, tokenizer) for name, path in split.paths().items()} if split else {}
    split_counts = _counts(stages, "split")
    augment = _counts(stages, "augment")
    report = {
        "kind": ingest.kind if ingest else "sft",  # supervised records or preference pairs
        **{k: parts[k] for k in ("input", "kept", "quarantined", "review", "pilot_skipped")},
        "removed": dict(Counter(r["reason"] for r in removed)),
        "removed_total": len(removed),
        "augmented": int(augment.get("augmented", sum(s["augmented"] for s in splits.values()))),
        **{name: stats["count"] for name, stats in splits.items()},
        "splits": splits,
        "quarantined_by_reason": dict(Counter(r["check"] for q in quarantine for r in q.get("reasons", []))),
        "quarantined_multi_reason": sum(len(q.get("reasons", [])) > 1 for q in quarantine),  # why the reasons outnumber the records
        "quarantined_by_stage": dict(Counter(q.get("stage", "?") for q in quarantine)),
        "leakage_moves": split_counts.get("leakage_moves", 0),
        "leakage_moves_by_reason": split_counts.get("moves_by_reason", {}),
        "split_clustered_records": split_counts.get("clustered_records", 0),
        "split_note": split_counts.get("ratio_note"),
        "frozen_test": {k: split_counts.get(k, 0) for k in ("frozen_test", "frozen_matched", "frozen_added")},
        "conservation": parts,
        "token_length_method": "tokenizer" if tokenizer is not None else "approx_words_plus_han_chars",
        "sequence_length": lengths.to_dict() if lengths else None,
        "duplicate_clusters": duplicate_clusters(removed),
        "near_duplicate_pairs": near_duplicate_pairs(removed),
        "conflicts": conflicts(review),
        "stages": [{"stage": name, "counts": result.counts} for name, result in stages.items()],
        "files": {"quarantine": str(data / "quarantine.jsonl"), "review": str(data / "review.jsonl"),
                  "removed": clean and clean.removed},
    }
    (data / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    markdown = _markdown(report)
    (data / "report.html").write_text(render_html(report, markdown, _record_pages(stages, header, quarantine, removed, review)),
                                      encoding="utf-8")
    return DataReport(report_json=str(data / "report.json"), report_html=str(data / "report.html"),
                      quarantine=str(data / "quarantine.jsonl"), review=str(data / "review.jsonl"), markdown=markdown,
                      metrics=_metrics(report))


def _record_pages(stages: dict[str, DataStageResult | Splits], header: dict | None, quarantine: list[dict],
                  removed: list[dict], review: list[dict]) -> dict:
    """The report's header and the text of every record taken out (HTML parts for render_html)."""
    from loraflow.tasks.data.report_records import record_views, report_header

    clean = stages.get("clean")
    files = {"quarantine": "data/quarantine.jsonl", "removed": (clean and clean.removed) or "removed.jsonl",
             "review": "data/review.jsonl"}
    # Only the kept records that removed duplicates point at are shown: the kept file can hold millions.
    wanted = {str(r["duplicate_of"]) for r in removed if r.get("duplicate_of")}
    path = clean and clean.records
    kept = [r for r in iter_jsonl(path) if str(r.get("id")) in wanted] if wanted and path and Path(path).is_file() else []
    max_tokens = ((header or {}).get("config") or {}).get("validate", {}).get("max_tokens")
    return {"header": report_header(header or {}), "records": record_views(quarantine, removed, review, kept, files, max_tokens)}
