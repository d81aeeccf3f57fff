"""Preference pairs in the data stages: the dataset's kind, pair-aware keys, and the pairs a human must look at."""
from collections import Counter

from loraflow.schemas.preferences import is_pair, rejected_messages
from loraflow.tasks.data.dedup import content_key
from loraflow.tasks.common.errors import LoraflowError


def apply_kind(records: list[tuple[int, dict]], kind: str) -> tuple[str, list[tuple[int, dict]], list[dict]]:
    """The dataset's kind (sft or preference), the records that fit it, and quarantine rows for those that do not.

    auto: `preference` when every record is a pair, `sft` when none is; a mix is a user error. `sft` trains on the
    chosen answers of pairs (their rejected answers are dropped); `preference` quarantines records without a pair.
    """
    kind = resolve_kind(sum(1 for _, r in records if is_pair(r)), len(records), kind)
    if kind == "sft":
        return kind, [(line, {k: v for k, v in r.items() if k != "rejected"}) for line, r in records], []
    kept, quarantine = [], []
    for line, record in records:
        if is_pair(record):
            kept.append((line, record))
        else:
            quarantine.append({"line": line, "raw": record, "reasons": [
                {"check": "not_a_pair", "field": "rejected", "value": None}]})
    return kind, kept, quarantine


def resolve_kind(pairs: int, total: int, kind: str) -> str:
    """data.kind with `auto` decided from how many of the records are pairs; a mix is a user error."""
    if kind != "auto":
        return kind
    if 0 < pairs < total:
        raise LoraflowError(f"the input mixes {pairs} preference pairs with {total - pairs} supervised records; "
                            "set data.kind=preference (quarantines the supervised ones) or data.kind=sft (trains on the "
                            "chosen answers), or split the file.")
    return "preference" if total and pairs == total else "sft"


def dedup_key(record: dict) -> str:
    """Exact-duplicate key: the whole conversation, and for a pair its rejected answer too."""
    if is_pair(record):
        return content_key([*record["messages"], {"role": "rejected", "content": record["rejected"]}])
    return content_key(record["messages"])


def comparison_messages(record: dict) -> list[dict]:
    """The turns near-duplicate detection compares: the conversation, and a pair's rejected answer as one more answer."""
    if is_pair(record):
        return [*record["messages"], {"role": "assistant", "content": record["rejected"]}]
    return record["messages"]


def pair_reviews(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Pairs without a contrast (chosen == rejected) or contradicting another pair (a > b and b > a) go to review."""
    prompt_of = [content_key(r["messages"][:-1]) for r in records]
    order = Counter((p, r["messages"][-1]["content"], r["rejected"]) for p, r in zip(prompt_of, records))
    kept, review = [], []
    for prompt, record in zip(prompt_of, records):
        chosen, rejected = record["messages"][-1]["content"], record["rejected"]
        if chosen == rejected:
            reason = "chosen_equals_rejected"
        elif order[(prompt, rejected, chosen)]:
            reason = "contradicting_preferences"
        else:
            kept.append(record)
            continue
        review.append({**record, "review": {"reason": reason, "group": prompt[:16], "stage": "clean"}})
    return kept, review


def pair_token_texts(records: list) -> list:
    """The rejected side of each pair as a conversation (None for a record that is not a well-formed pair)."""
    return [rejected_messages(r) if isinstance(r, dict) and isinstance(r.get("rejected"), str)
            and isinstance(r.get("messages"), list) and r["messages"] else None for r in records]
