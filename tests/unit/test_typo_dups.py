"""Typo-level copies of a request (one word misspelt or doubled, other punctuation; same answer) are found at short and
long lengths in both languages; distinct requests that share words, a system prompt or an answer are kept."""
import json
from pathlib import Path

from loraflow.schemas.config import CleanConfig
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.data.typo_dups import is_typo_copy, typo_units

ROOT = Path(__file__).resolve().parents[2]


def test_what_counts_as_a_typo_level_copy():
    def same(a: str, b: str) -> bool:
        return is_typo_copy(typo_units(a), typo_units(b))

    assert same("Help me unblock my PIN.", "help me unblok my pin!!")  # a dropped letter, case, punctuation
    assert same("send mom an email now", "send mom an emial now")  # two letters swapped
    assert same("please help me", "please please help me")  # a word said twice
    assert same("我的订单还没到。", "我的订单还没到！！") and same("这个外卖送得太慢了", "这个外卖送的太慢了")
    assert not same("travelling to madrid next week", "travelling to stockholm next week")  # a different city
    assert not same("set an alarm for six", "set an alarm for ten")  # a short word: no room for a typo
    assert not same("book a flight", "book a train ticket")
    assert not same("去上海", "去北京")  # a short Chinese text: one character is a different request


def _records() -> list[dict]:
    base = read_jsonl(ROOT / "examples" / "hwu64" / "data.jsonl")[:120]
    zh = [r for r in read_jsonl(ROOT / "tests" / "data" / "short_messages.jsonl") if r["language"] == "zh"]
    out = [dict(r, metadata={"language": "en", "source_line": i + 1}) for i, r in enumerate(base)]
    for i, r in enumerate(zh):
        out.append({"id": f"zh{i}", "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": r["text"]},
                                                 {"role": "assistant", "content": json.dumps({"label": r["label"]}, ensure_ascii=False)}],
                    "metadata": {"language": "zh", "source_line": 1000 + i}})
    long_text = " ".join(r["messages"][1]["content"] for r in base[:6])
    out.append({"id": "long", "messages": [{"role": "user", "content": long_text}, base[0]["messages"][-1]],
                "metadata": {"language": "en", "source_line": 2000}})
    return out


def test_planted_copies_are_removed_and_distinct_records_kept(tmp_path):
    records = _records()
    copies = {f"copy-{r['id']}": r["id"] for r in records[:10] + records[-11:]}  # short en, short zh, the long one
    path = tmp_path / "validated.jsonl"
    write_jsonl(path, records + _copies(records, copies))
    result = clean_records(str(path), CleanConfig(), ["en", "zh"], str(tmp_path / "run"))
    removed = {r["id"]: r for r in read_jsonl(result["removed"])}
    found = [c for c in copies if c in removed and removed[c]["reason"] == "near_duplicate" and removed[c]["duplicate_of"] == copies[c]]
    assert len(found) == len(copies), sorted(set(copies) - set(found))
    distinct_removed = [r for r in removed if r not in copies]
    assert len(distinct_removed) <= 0.01 * len(records), distinct_removed
    assert any("typo-level copy" in removed[c]["detail"] for c in found)


def _copies(records: list[dict], copies: dict) -> list[dict]:
    by_id = {r["id"]: r for r in records}
    out = []
    for i, (copy_id, original) in enumerate(copies.items()):  # a doubled word, or "!!" for the final punctuation
        r = by_id[original]
        text = r["messages"][-2]["content"]
        words = text.split(" ")
        new = (" ".join([words[0], words[1], *words[1:]]) if len(words) > 2 else
               text.rstrip("。？！?.!") + ("！！" if any("\u4e00" <= c <= "\u9fff" for c in text) else "!!"))
        out.append({**r, "id": copy_id, "messages": [*r["messages"][:-2], {"role": "user", "content": new}, r["messages"][-1]],
                    "metadata": {**r["metadata"], "source_line": 5000 + i}})
    return out
