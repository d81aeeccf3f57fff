"""Cleaning: normalise, filter low quality, remove exact and near duplicates, send conflicts to review."""
import json
from collections import Counter

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.records import CleanRecord, row_failures
from loraflow.schemas.preferences import is_pair
from loraflow.tasks.data.dedup import content_key, near_duplicates
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.common.progress import progress
from loraflow.tasks.common.jsonl import iter_jsonl, write_jsonl
from loraflow.tasks.data.normalize import normalize_record
from loraflow.tasks.data.preferences import comparison_messages, dedup_key, pair_reviews
from loraflow.tasks.data.quality import detect_language, language_text, language_verdict, quality_problem

# Problems a person should decide rather than a filter: the record goes to review.jsonl, not removed.jsonl.
REVIEW_REASONS = frozenset({"uncertain_language"})
from loraflow.tasks.data.validate import records_frame


def prompt_key(messages: list[dict]) -> str:
    """Key of everything before the reference answer: equal keys with different answers conflict."""
    return content_key(messages[:-1])


def _removal(record: dict, reason: str, detail: str, duplicate_of: str | None = None, similarity: float | None = None) -> dict:
    row = {"id": record["id"], "line": record["metadata"].get("source_line"), "reason": reason, "detail": detail}
    if duplicate_of is not None:
        row["duplicate_of"] = duplicate_of
    if similarity is not None:
        row["similarity"] = round(similarity, 4)
    return {**row, "stage": "clean", "record": record}


def near_removal(record: dict, kept: dict, sim: float, config: CleanConfig) -> dict:
    """The removed.jsonl row of a near duplicate of the earlier kept record (MinHash, or a typo-level copy)."""
    detail = (f"estimated Jaccard {sim:.2f} >= clean.near_dup_threshold={config.near_dup_threshold} "
              f"(clean.near_dup_compare={config.near_dup_compare})" if sim >= config.near_dup_threshold else
              f"typo-level copy of the request ({sim:.0%} of its words or characters equal, one misspelt) with the same answer")
    return {**_removal(record, "near_duplicate", detail, kept["id"], sim), "duplicate_of_messages": kept["messages"]}


def _empty_turn(record: dict) -> str | None:
    for i, m in enumerate(record["messages"]):
        if not m["content"]:
            return f"messages[{i}].content is empty after normalisation"
    if is_pair(record) and not record["rejected"]:
        return "rejected is empty after normalisation"
    return None


def _answers_conflict(answers: list[str], threshold: float) -> bool:
    """Whether answers to one prompt disagree: any JSON field differs, or texts are not near-identical.

    Answers that differ by a word are near-duplicates (removed later); a different label is a conflict for a human.
    """
    def grams(text: str) -> set[str]:
        return {text[i:i + 3] for i in range(max(1, len(text) - 2))}

    for i, a in enumerate(answers):
        for b in answers[i + 1:]:
            ja, jb = _json_value(a), _json_value(b)
            if ja is not None and jb is not None:
                if ja != jb:
                    return True
            elif len(grams(a) & grams(b)) / max(1, len(grams(a) | grams(b))) < threshold:
                return True
    return False


def _json_value(text: str):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


def clean_one(record: dict, config: CleanConfig, languages: list[str]) -> tuple[dict, tuple[str, str] | None]:
    """The record normalised and language-tagged, and the (reason, detail) of the first filter it fails, or None."""
    if config.normalize:
        record = normalize_record(record)
    meta = record["metadata"]
    if not isinstance(meta.get("language"), str):
        text = language_text(record["messages"])
        meta["language"] = detect_language(text)
        if config.filter_language and languages and meta["language"] not in languages:  # a short text in a declared script
            meta["language"] = language_verdict(text, meta["language"], languages, config)[0]
    empty = _empty_turn(record)
    return record, (("too_short", empty) if empty else quality_problem(record["messages"], meta["language"], config, languages))


def quality_review(record: dict, reason: str, detail: str) -> dict:
    """The review.jsonl row of a record a filter would not remove on its own (REVIEW_REASONS)."""
    return {**record, "review": {"reason": reason, "detail": detail, "stage": "clean"}}


def conflict_reviews(members: list[dict], key: str) -> list[dict]:
    """Review rows for records sharing a prompt (content key `key`) whose answers conflict."""
    ids = [r["id"] for r in members]
    return [{**r, "review": {"reason": "conflicting_answers", "group": key[:16],
                             "conflicts_with": [x for x in ids if x != r["id"]], "stage": "clean"}} for r in members]


def clean_records(records_path: str, config: CleanConfig, languages: list[str], out_dir: str) -> dict:
    """Normalise and filter records; every removal carries a reason code, conflicts go to review."""
    n_input = 0
    removed: list[dict] = []
    quality_reviews: list[dict] = []
    survivors = []
    for record in progress(iter_jsonl(records_path), "clean"):  # streamed: raw copies never pile up beside the normalised ones
        n_input += 1
        record, problem = clean_one(record, config, languages)
        if problem and problem[0] in REVIEW_REASONS:
            quality_reviews.append(quality_review(record, *problem))
        elif problem:
            removed.append(_removal(record, *problem))
        else:
            survivors.append(record)
    records = survivors

    if config.exact_dedup:
        first: dict[str, str] = {}
        survivors = []
        for record in records:
            key = dedup_key(record)
            if key in first:
                removed.append(_removal(record, "exact_duplicate", "same normalised conversation", first[key], 1.0))
            else:
                first[key] = record["id"]
                survivors.append(record)
        records = survivors

    # Conflicts before near-dedup: a same-prompt pair with different answers is for a human, not a near-duplicate.
    review = quality_reviews
    pairs = bool(records) and is_pair(records[0])
    if pairs:  # several pairs per prompt are normal; a pair without contrast or one contradicting another is not
        records, pair_review = pair_reviews(records)
        review = review + pair_review
    elif config.conflicts_to_review:
        groups: dict[str, list[int]] = {}
        for j, record in enumerate(records):
            groups.setdefault(prompt_key(record["messages"]), []).append(j)
        conflicted = set()
        for key, members in groups.items():
            answers = [records[j]["messages"][-1]["content"] for j in members]
            if len(members) > 1 and _answers_conflict(answers, config.near_dup_threshold):
                review += conflict_reviews([records[j] for j in members], key)
                conflicted.update(members)
        records = [r for j, r in enumerate(records) if j not in conflicted]

    if config.near_dedup and len(records) > 1:
        langs = [r["metadata"]["language"] for r in records]
        dups = near_duplicates([comparison_messages(r) for r in records], langs, config.near_dup_threshold, config.near_dup_compare,
                               config.minhash_perm, config.ngram_zh, config.ngram_en)
        del langs
        for j, (i, sim) in sorted(dups.items()):
            removed.append(near_removal(records[j], records[i], sim, config))
        records = [r for j, r in enumerate(records) if j not in dups]

    # The cleaned output must meet the CleanRecord contract; a failure here is a bug in cleaning, not bad data.
    failures = row_failures(CleanRecord.to_schema(), records_frame(records)) if records else {}
    if failures:
        row, reasons = next(iter(failures.items()))
        raise RuntimeError(f"cleaning produced an invalid record {records[row]['id']}: {reasons}")

    folder = stage_dir(out_dir)
    paths = {name: folder / f"{name}.jsonl" for name in ("cleaned", "removed", "review")}
    write_jsonl(paths["cleaned"], records)
    write_jsonl(paths["removed"], removed)
    write_jsonl(paths["review"], review)
    by_reason = Counter(r["reason"] for r in removed)
    return {
        "stage": "clean",
        "records": str(paths["cleaned"]),
        "removed": str(paths["removed"]),
        "review": str(paths["review"]),
        "counts": {"input": n_input, "kept": len(records), "removed": dict(sorted(by_reason.items())),
                   "removed_total": len(removed), "review": len(review),
                   "languages": dict(Counter(r["metadata"]["language"] for r in records))},
    }
