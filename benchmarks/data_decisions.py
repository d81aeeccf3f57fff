"""Data decisions on realistic data: which records near-duplicate removal drops, and the split shares it leaves.

Runs ingest -> validate -> clean -> split with the default config on the bundled quickstart tickets and on two seeded
synthetic sets shaped like issue 14's reports (short templated tickets with one system prompt and JSON answers; templated
product reviews with clusters of near copies), once per near-duplicate comparison the checkout offers. Every record's
id carries its origin, so a removal is counted as a true copy (same origin) or a lost distinct record.

Run it on two checkouts to compare them: `python benchmarks/data_decisions.py` (prints Markdown for RESULTS.md).
"""
import argparse
import json
import random
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loraflow.schemas.config.clean import CleanConfig  # noqa: E402
from loraflow.schemas.config.data import DataConfig  # noqa: E402
from loraflow.schemas.config.split import SplitConfig  # noqa: E402
from loraflow.tasks.data.clean import clean_records  # noqa: E402
from loraflow.tasks.data.ingest import ingest_records  # noqa: E402
from loraflow.tasks.common.jsonl import read_jsonl  # noqa: E402
from loraflow.tasks.data.split import split_records  # noqa: E402
from loraflow.tasks.data.validate import validate_records  # noqa: E402

SUFFIXES = ("-near", "-dup", "-conflict", "-empty")
ITEMS = {"zh": ["音箱", "键盘", "耳机", "手环", "台灯", "鼠标", "水壶", "背包"],
         "en": ["speaker", "keyboard", "headphones", "band", "lamp", "mouse", "kettle", "backpack"]}
CITIES = {"zh": ["厦门", "杭州", "成都", "武汉"], "en": ["Xiamen", "Hangzhou", "Chengdu", "Wuhan"]}
ASKS = {"zh": [("delivery_eta", "订单{o}的{i}什么时候能送到{c}?"), ("cancel", "订单{o}的{i}不要了,{c}这边能取消吗?"),
               ("address", "订单{o}的{i}请改送到{c}")],
        "en": [("delivery_eta", "When will the {i} of order {o} arrive in {c}?"), ("cancel", "Please cancel the {i} of order {o}, I am in {c}"),
               ("address", "Send the {i} of order {o} to {c} instead")]}
PRODUCTS = ["phone", "laptop", "camera", "watch", "tablet", "printer"]
GOOD, BAD = ["great", "excellent", "reliable", "fast"], ["slow", "broken", "noisy", "disappointing"]


def short_tickets(path: Path, rng: random.Random, n: int = 240, copies: int = 10) -> None:
    """n distinct short tickets (one system prompt, JSON answers) and `copies` near copies of them (a word added)."""
    rows = []
    for k in range(n):
        lang = "zh" if k % 2 else "en"
        intent, ask = rng.choice(ASKS[lang])
        item, city, order = rng.choice(ITEMS[lang]), rng.choice(CITIES[lang]), str(rng.randint(200000, 299999))
        answer = json.dumps({"intent": intent, "item": item, "order": order, "city": city}, ensure_ascii=False)
        rows.append({"id": f"s{k:03d}", "messages": [{"role": "system", "content": "Extract the ticket as JSON."},
                                                     {"role": "user", "content": ask.format(o=order, i=item, c=city)},
                                                     {"role": "assistant", "content": answer}]})
    for row in rng.sample(rows, copies):
        user = row["messages"][1]["content"] + (" 谢谢" if "订单" in row["messages"][1]["content"] else " thanks")
        rows.append({**row, "id": row["id"] + "-near", "messages": [row["messages"][0], {"role": "user", "content": user}, row["messages"][2]]})
    _write(path, rng, rows)


def templated_reviews(path: Path, rng: random.Random, n: int = 240, clusters: int = 30, size: int = 4) -> None:
    """n distinct templated reviews and `clusters` groups of `size` near copies (one word changed) of further reviews."""
    def review(k: int) -> dict:
        product, good = rng.choice(PRODUCTS), rng.random() < 0.5
        words = rng.sample(GOOD if good else BAD, 2)
        text = f"The {product} I bought in week {rng.randint(1, 52)} is {words[0]} and {words[1]}, I would {'' if good else 'not '}buy it again."
        return {"id": f"v{k:03d}", "messages": [{"role": "user", "content": f"Classify the sentiment of this review: {text}"},
                                                {"role": "assistant", "content": json.dumps({"sentiment": "positive" if good else "negative", "product": product})}]}

    rows = [review(k) for k in range(n + clusters)]
    for source in rows[n:]:
        for c in range(1, size):
            words = source["messages"][0]["content"].split()
            words[rng.randrange(8, len(words))] = rng.choice(["really", "truly", "quite", "very"])
            rows.append({**source, "id": f"{source['id']}-near{c}",
                         "messages": [{"role": "user", "content": " ".join(words)}, source["messages"][1]]})
    _write(path, rng, rows)


def _write(path: Path, rng: random.Random, rows: list[dict]) -> None:
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def origin(record_id: str) -> str:
    """The id of the record a generated copy was made from."""
    for suffix in SUFFIXES:
        record_id = record_id.split(suffix)[0]
    return record_id


def run(path: Path, compare: str | None, languages: list[str]) -> dict:
    """The data stages with default settings (the comparison named when the checkout has the setting)."""
    with tempfile.TemporaryDirectory() as out:
        ingest = ingest_records(str(path), DataConfig(), out)
        valid = validate_records(ingest["records"], DataConfig(max_invalid_share=0.5), languages, None, 4096, out,
                                 ingest["counts"]["quarantined"], ingest["counts"]["input"])
        clean_config = CleanConfig(**({"near_dup_compare": compare} if compare else {}))
        split_config = SplitConfig(**({"leakage_compare": compare} if compare else {}))
        clean = clean_records(valid["records"], clean_config, languages, out)
        split = split_records(clean["records"], split_config, out)
        near = [r for r in read_jsonl(clean["removed"]) if r["reason"] == "near_duplicate"]
        where = {r["id"]: name for name in ("train", "val", "test") for r in read_jsonl(split[name])}
    # A copy clean kept (below its threshold) that lands in another split than its origin leaks into evaluation.
    apart = sum(1 for i, name in where.items() if i != origin(i) and origin(i) in where and where[origin(i)] != name)
    copies = [line for line in path.read_text(encoding="utf-8").splitlines() if '-near' in line.split('"messages"')[0]]
    lost = sum(origin(r["id"]) != origin(r["duplicate_of"]) for r in near)
    counts = split["counts"]
    return {"compare": compare or "conversation (only)", "input": ingest["counts"]["input"], "near_removed": len(near),
            "lost": lost, "copies_caught": len(near) - lost, "copies": len(copies),
            "split": (counts["train"], counts["val"], counts["test"]), "moves": counts["leakage_moves"], "apart": apart,
            "clustered": counts.get("clustered_records", "n/a"), "note": counts.get("ratio_note")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this checkout", help="name of the code version in the output")
    args = parser.parse_args()
    compares = list(CleanConfig.model_fields["near_dup_compare"].annotation.__args__) if "near_dup_compare" in CleanConfig.model_fields else [None]
    with tempfile.TemporaryDirectory() as tmp:
        short, reviews = Path(tmp) / "short_tickets.jsonl", Path(tmp) / "templated_reviews.jsonl"
        short_tickets(short, random.Random(14))
        templated_reviews(reviews, random.Random(14))
        sets = [("examples/quickstart/tickets.jsonl", ROOT / "examples" / "quickstart" / "tickets.jsonl", ["en", "zh"]),
                ("short tickets (synthetic, 250)", short, ["en", "zh"]), ("templated reviews (synthetic, 360)", reviews, ["en"])]
        rows = [(name, run(path, compare, langs)) for name, path, langs in sets for compare in compares]
    print(f"data_decisions.py on {args.label}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; default thresholds "
          f"(clean.near_dup_threshold {CleanConfig().near_dup_threshold}, split.leakage_threshold {SplitConfig().leakage_threshold})\n")
    print("| data | comparison | input | near-dup removed | distinct records lost | injected copies caught | "
          "train/val/test | leakage moves | records split as units | copies split apart | shares note |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for name, r in rows:
        print(f"| {name} | {r['compare']} | {r['input']} | {r['near_removed']} | {r['lost']} | {r['copies_caught']}/{r['copies']} | "
              f"{'/'.join(map(str, r['split']))} | {r['moves']} | {r['clustered']} | {r['apart']} | {r['note'] or '-'} |")


if __name__ == "__main__":
    main()
