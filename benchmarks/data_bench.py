"""Data-stage benchmark: synthetic zh/en records with 5% exact and 5% near duplicates through the data stages.

Times ingest, validate, clean (normalise + filters + exact + near dedup) and split on one file, reports records/s
and peak RSS, then times the near-duplicate stage alone against plain datasketch MinHash + MinHashLSH on the
same texts in the same run. Prints a Markdown block for benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import cpu_name  # noqa: E402
from loraflow.schemas.config.clean import CleanConfig  # noqa: E402
from loraflow.schemas.config.data import DataConfig  # noqa: E402
from loraflow.schemas.config.split import SplitConfig  # noqa: E402
from loraflow.tasks.data.clean import clean_records  # noqa: E402
from loraflow.tasks.data.dedup import conversation_text, near_duplicates  # noqa: E402
from loraflow.tasks.data.ingest import ingest_records  # noqa: E402
from loraflow.tasks.common.jsonl import iter_jsonl  # noqa: E402
from loraflow.tasks.data.split import split_records  # noqa: E402
from loraflow.tasks.data.validate import validate_records  # noqa: E402

EN_WORDS = ("the a of to and in is it you that for on with as be at this from your my order account invoice password "
            "printer laptop router package refund subscription screen battery keyboard delivery warranty license "
            "server backup calendar meeting report budget ticket camera reset update cancel track install repair "
            "replace upgrade check renew export share restore open please settings page choose confirm").split()
EN_RARE = [f"sku{i}" for i in range(5000)]
ZH_CHARS = ("的一是不了人我在有他这中大来上个国到说们为子和你地出会也时要就可以对生能而下过天去年得自着后家多方样"
            "订单账户发票密码打印机电脑路由器包裹退款订阅屏幕电池键盘快递保修许可服务器备份日历会议报告预算工单相机")


def _en(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(EN_WORDS) if rng.random() < 0.6 else rng.choice(EN_RARE) for _ in range(n))


def _zh(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ZH_CHARS) for _ in range(n))


def _edit(rng: random.Random, record: dict) -> dict:
    """A near duplicate: one word (en) or one character (zh) of the answer replaced."""
    answer = record["messages"][1]["content"]
    if record["metadata"]["language"] == "en":
        words = answer.split()
        words[rng.randrange(len(words))] = rng.choice(EN_RARE)
        answer = " ".join(words)
    else:
        i = rng.randrange(len(answer))
        answer = answer[:i] + rng.choice(ZH_CHARS) + answer[i + 1:]
    return {"messages": [record["messages"][0], {"role": "assistant", "content": answer}], "metadata": dict(record["metadata"])}


def generate(path: Path, n: int, seed: int = 0) -> dict:
    """n records, half Chinese and half English; 5% exact and 5% near copies of earlier records; returns the mix."""
    rng = random.Random(seed)
    mix = {"exact": 0, "near": 0}
    originals: list[dict] = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            roll = rng.random()
            if originals and roll < 0.05:
                record = rng.choice(originals)
                mix["exact"] += 1
            elif originals and roll < 0.10:
                record = _edit(rng, rng.choice(originals))
                mix["near"] += 1
            elif rng.random() < 0.5:
                record = {"messages": [{"role": "user", "content": f"请问{_zh(rng, 16)}？"},
                                       {"role": "assistant", "content": f"您好，{_zh(rng, 50)}。"}], "metadata": {"language": "zh"}}
            else:
                record = {"messages": [{"role": "user", "content": f"How do I {_en(rng, 10)}?"},
                                       {"role": "assistant", "content": f"To do that, {_en(rng, 30)}."}], "metadata": {"language": "en"}}
            if len(originals) < 50_000 and roll >= 0.10:
                originals.append(record)
            elif roll >= 0.10 and rng.random() < 0.1:
                originals[rng.randrange(len(originals))] = record  # keep duplicate sources spread over the file
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return mix


def _shingles(text: str, lang: str) -> set[bytes]:
    if lang == "zh":
        return {text[i:i + 3].encode() for i in range(len(text) - 2)}
    words = text.lower().replace(",", " ").replace(".", " ").replace("?", " ").split()
    return {" ".join(words[i:i + 3]).encode() for i in range(len(words) - 2)}


def datasketch_baseline(texts: list[str], langs: list[str], threshold: float, num_perm: int) -> int:
    """Plain datasketch: one MinHash per text, query the LSH index, insert when no near duplicate is found."""
    from datasketch import MinHash, MinHashLSH

    lsh, found = MinHashLSH(threshold=threshold, num_perm=num_perm), 0
    for i, (text, lang) in enumerate(zip(texts, langs)):
        m = MinHash(num_perm=num_perm)
        m.update_batch(list(_shingles(text, lang)))
        if lsh.query(m):
            found += 1
        else:
            lsh.insert(i, m)
    return found


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(n: int, baseline_max: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        timings: dict[str, tuple[float, float]] = {}

        def timed(name, fn):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()
            timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)
            return result

        generated = timed("generate (not counted)", lambda: generate(tmp_path / "in.jsonl", n))
        out = str(tmp_path / "run")
        ingest = timed("ingest", lambda: ingest_records(str(tmp_path / "in.jsonl"), DataConfig(), out))
        valid = timed("validate", lambda: validate_records(ingest["records"], DataConfig(), ["en", "zh"], None, 4096, out))
        clean = timed("clean + dedup", lambda: clean_records(valid["records"], CleanConfig(), ["en", "zh"], out))
        split = timed("split + leakage check", lambda: split_records(clean["records"], SplitConfig(), out))
        rss_pipeline = peak_rss_gib()
        core_stages = ("validate", "clean + dedup", "split + leakage check")
        core = tuple(sum(timings[k][i] for k in core_stages) for i in (0, 1))

        records = list(iter_jsonl(valid["records"]))[:baseline_max]
        conversations = [r["messages"] for r in records]
        texts = [conversation_text(m) for m in conversations]
        langs = [r["metadata"]["language"] for r in records]
        del records
        # The same texts as datasketch gets: whole conversations.
        ours = timed("near-dup: loraflow", lambda: len(near_duplicates(conversations, langs, 0.85, "conversation", 128, 3, 3)))
        theirs = timed("near-dup: datasketch", lambda: datasketch_baseline(texts, langs, 0.85, 128))
    ours_s, theirs_s = timings.pop("near-dup: loraflow"), timings.pop("near-dup: datasketch")
    total = (core[0] + timings["ingest"][0], core[1] + timings["ingest"][1])
    return {"n": n, "baseline_max": baseline_max, "generated": generated, "timings": timings, "core_s": core,
            "total_s": total, "rss": rss_pipeline, "clean": clean["counts"], "split": split["counts"], "nd_n": len(texts),
            "ours_s": ours_s, "ours": ours, "theirs_s": theirs_s, "theirs": theirs}


def markdown(r: dict, load_before: float) -> str:
    machine = (f"{cpu_name()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
               f"1-min load average before the run {load_before:.2f} (a shared machine)")
    lines = [f"### {r['n']:,} records, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "", f"Machine: {machine}.",
             f"Command: `benchmarks/data_bench.py --records {r['n']} --baseline-max {r['baseline_max']}`", "",
             "| stage | wall s | records/s (wall) | CPU s | records/s (CPU) |", "|---|---:|---:|---:|---:|"]
    rows = [*r["timings"].items(), ("**validate + clean + dedup + split**", r["core_s"]), ("with ingest", r["total_s"])]
    for stage, (wall, cpu) in rows:
        lines.append(f"| {stage} | {wall:.1f} | {r['n'] / wall:,.0f} | {cpu:.1f} | {r['n'] / cpu:,.0f} |")
    lines += ["", "CPU s is this process's CPU time (the code is single-threaded): on a machine shared with other jobs it is "
              "what the wall time would be with a core to itself.", "",
              f"Generated {r['generated']['exact']:,} exact and {r['generated']['near']:,} near copies (one word or character "
              "of the answer replaced; for English that is Jaccard ~0.87 on word 3-grams, close to the 0.85 threshold, "
              "so near copies the estimate puts below it are left as same-prompt conflicts in review).",
              f"Peak RSS through the stages: **{r['rss']:.2f} GiB**. Removed: {r['clean']['removed']}; review {r['clean']['review']}; "
              f"kept {r['clean']['kept']:,}; splits {r['split']['train']:,}/{r['split']['val']:,}/{r['split']['test']:,}; "
              f"leakage moves {r['split']['leakage_moves']}.", "",
              f"Near-duplicate stage on {r['nd_n']:,} texts (threshold 0.85, 128 permutations, 3-grams):", "",
              "| implementation | wall s | CPU s | near duplicates found |", "|---|---:|---:|---:|",
              f"| loraflow (`tasks/data/dedup.py`, vectorised) | {r['ours_s'][0]:.1f} | {r['ours_s'][1]:.1f} | {r['ours']:,} |",
              f"| datasketch MinHash + MinHashLSH | {r['theirs_s'][0]:.1f} | {r['theirs_s'][1]:.1f} | {r['theirs']:,} |", "",
              f"Speed-up: **{r['theirs_s'][0] / r['ours_s'][0]:.1f}x** wall, **{r['theirs_s'][1] / r['ours_s'][1]:.1f}x** CPU."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="synthetic records to generate")
    parser.add_argument("--baseline-max", type=int, default=200_000,
                        help="texts for the near-dup comparison (datasketch takes ~0.3 ms per text)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    print(markdown(run(args.records, args.baseline_max), load_before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
