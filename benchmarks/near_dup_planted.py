"""Near-duplicate decisions on a planted set: typo-level copies of real requests found, distinct requests kept.

Takes distinct real records (JSON Lines in loraflow's chat format, e.g. examples/hwu64/data.jsonl and the sets of
benchmarks/real_data), plants typo-level copies of a seeded share of them (the same answer; the request with one word
misspelt, one word or character doubled, or the final punctuation turned into "!!" / "！！"), at short lengths and, by
joining three requests, at long ones; then runs the real clean and split stages and reports, per language and length:
planted copies found (removed, or kept in the original's split), distinct records removed, and copies across splits.

    .venv/bin/python benchmarks/near_dup_planted.py examples/hwu64/data.jsonl runs/real/ecdt/data.jsonl --out /tmp/planted
"""
import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loraflow.schemas.config import CleanConfig, SplitConfig  # noqa: E402
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl  # noqa: E402
from loraflow.tasks.data.clean import clean_records  # noqa: E402
from loraflow.tasks.data.split import split_records  # noqa: E402

_HAN = re.compile(r"[\u4e00-\u9fff]")


def misspell(text: str, rng: random.Random) -> str | None:
    """One word of 5+ letters with two inner letters swapped (English), or one Chinese character replaced by another
    (a wrong character, as pinyin input gives: 的/地/得, 在/再, ...)."""
    if _HAN.search(text):
        spots = [i for i, c in enumerate(text) if _HAN.match(c)]
        i = rng.choice(spots)
        wrong = rng.choice([c for c in "的地得在再做作已以那哪他她它和合" if c != text[i]])
        return text[:i] + wrong + text[i + 1:]
    words = text.split(" ")
    long_ = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long_:
        return None
    i = rng.choice(long_)
    w = words[i]
    k = rng.randrange(1, len(w) - 2)
    words[i] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    return " ".join(words)


def double_word(text: str, rng: random.Random) -> str:
    """One word said twice ("please please"); in Chinese, one character."""
    if _HAN.search(text):
        i = rng.choice([i for i, c in enumerate(text) if _HAN.match(c)])
        return text[:i + 1] + text[i] + text[i + 1:]
    words = text.split(" ")
    i = rng.randrange(len(words))
    return " ".join(words[:i + 1] + [words[i]] + words[i + 1:])


def shout(text: str, rng: random.Random) -> str:
    bang = "！！" if _HAN.search(text) else "!!"
    return re.sub(r"[.?!。？！]*$", "", text) + bang


MUTATIONS = {"misspelt": misspell, "doubled": double_word, "punctuation": shout}


def planted_set(records: list[dict], share: float, seed: int) -> tuple[list[dict], dict]:
    """Distinct records (short, and long ones joining three of the same answer) plus planted copies; {copy id: (original
    id, mutation, language, length)}."""
    rng = random.Random(seed)
    by_answer: dict[str, list[dict]] = {}
    for r in records:
        by_answer.setdefault(r["messages"][-1]["content"], []).append(r)
    longs = []
    for answer, group in by_answer.items():
        for k in range(0, len(group) - 2, 3):
            parts = group[k:k + 3]
            joined = " ".join(p["messages"][-2]["content"] for p in parts)
            longs.append({**parts[0], "id": f"long-{parts[0]['id']}",
                          "messages": [*parts[0]["messages"][:-2], {"role": "user", "content": joined}, parts[0]["messages"][-1]]})
    distinct = [dict(r, metadata={**r.get("metadata", {}), "length": "short"}) for r in records]
    distinct += [dict(r, metadata={**r.get("metadata", {}), "length": "long"}) for r in longs]
    planted, truth = [], {}
    for r in rng.sample(distinct, int(share * len(distinct))):
        name = rng.choice(list(MUTATIONS))
        text = MUTATIONS[name](r["messages"][-2]["content"], rng)
        if text is None or text == r["messages"][-2]["content"]:
            continue
        copy = {**r, "id": f"copy-{r['id']}", "messages": [*r["messages"][:-2], {"role": "user", "content": text}, r["messages"][-1]]}
        planted.append(copy)
        truth[copy["id"]] = (r["id"], name, r["metadata"].get("language", "?"), r["metadata"]["length"])
    mixed = distinct + planted
    rng.shuffle(mixed)
    return [dict(r, metadata={**r["metadata"], "source_line": i + 1}) for i, r in enumerate(mixed)], truth


def measure(records: list[dict], truth: dict, out: Path, languages: list[str]) -> dict:
    write_jsonl(out / "validated.jsonl", records)
    cleaned = clean_records(str(out / "validated.jsonl"), CleanConfig(), languages, str(out))
    split = split_records(cleaned["records"], SplitConfig(), str(out))
    removed = {r["id"]: r for r in read_jsonl(cleaned["removed"]) if r["reason"] in ("near_duplicate", "exact_duplicate")}
    where = {r["id"]: name for name in ("train", "val", "test") for r in read_jsonl(split[name])}
    texts = {r["id"]: r["messages"][-2]["content"] for r in records}
    originals = {o for o, *_ in truth.values()}
    for r in removed.values():
        if r["id"] not in truth and r["id"] not in originals:
            print(f"distinct removed: {texts[r['id']]!r} as a copy of {texts.get(r.get('duplicate_of'), '?')!r}", file=sys.stderr)
    rows = Counter()
    for copy_id, (original, mutation, lang, length) in truth.items():
        key = (lang, length)
        rows[key + ("planted",)] += 1
        caught = copy_id in removed or original in removed or where.get(copy_id) == where.get(original)
        rows[key + ("found",)] += caught
        rows[key + ("across",)] += (copy_id in where and original in where and where[copy_id] != where[original])
        rows[("all", mutation, "planted")] += 1
        rows[("all", mutation, "found")] += caught
        if not caught:
            print(f"missed ({mutation}): {texts[original]!r} -> {texts[copy_id]!r}", file=sys.stderr)
    copies = set(truth)
    distinct = [r for r in records if r["id"] not in copies]
    for r in distinct:
        key = (r["metadata"].get("language", "?"), r["metadata"]["length"])
        rows[key + ("distinct",)] += 1
        rows[key + ("distinct_removed",)] += r["id"] in removed and not any(o == r["id"] for o, *_ in truth.values())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", default="/tmp/near_dup_planted")
    parser.add_argument("--share", type=float, default=0.1, help="share of the distinct records that get a planted copy")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    records = [r for path in args.inputs for r in read_jsonl(path)]
    mixed, truth = planted_set(records, args.share, args.seed)
    rows = measure(mixed, truth, Path(args.out), ["en", "zh"])
    print("| language | length | distinct records | removed of them | planted copies | found | across splits |")
    print("|---|---|---|---|---|---|---|")
    for lang in sorted({k[0] for k in rows if k[0] != "all"}):
        for length in ("short", "long"):
            k = (lang, length)
            if rows[k + ("distinct",)]:
                print(f"| {lang} | {length} | {rows[k + ('distinct',)]} | {rows[k + ('distinct_removed',)]} | "
                      f"{rows[k + ('planted',)]} | {rows[k + ('found',)]} | {rows[k + ('across',)]} |")
    print("\nby mutation: " + ", ".join(f"{m} {rows[('all', m, 'found')]}/{rows[('all', m, 'planted')]}" for m in MUTATIONS))
    print(json.dumps({"|".join(k): v for k, v in sorted(rows.items())}))


if __name__ == "__main__":
    main()
