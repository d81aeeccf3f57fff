"""Data stages past one machine's memory: the in-memory path against the streaming path (local or Dask engine).

Generates the data_bench records once (5% exact and 5% near copies), then runs ingest -> validate -> clean
(exact + MinHash near dedup) -> split on each requested path in its own child process, so each path's peak RSS is
its own (children of a Dask run's workers included). Reports wall and CPU seconds per stage, records/s, peak RSS and
whether every output file (kept, removed, review, quarantine, splits) is byte-identical across the paths.

    benchmarks/data_scale_bench.py --records 1000000 --paths memory,stream
    benchmarks/data_scale_bench.py --records 10000000 --paths stream
    benchmarks/data_scale_bench.py --records 200000 --paths stream,dask:1,dask:2
"""
import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

OUTPUTS = ("data/stages/ingested.jsonl", "data/stages/quarantine_ingest.jsonl", "data/stages/validated.jsonl",
           "data/stages/quarantine_validate.jsonl", "data/stages/cleaned.jsonl", "data/stages/removed.jsonl",
           "data/stages/review.jsonl", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl")


def _rss_tree_gib() -> tuple[float, float]:
    """Resident memory of this process and all its descendants now (for Dask workers), in GiB: all of it, and the
    anonymous part (heap and arrays, without file pages mapped in)."""
    import psutil

    me = psutil.Process()
    total = anon = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            status = Path(f"/proc/{p.pid}/status").read_text()
            anon += int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:"))) * 1024
        except (psutil.Error, OSError, StopIteration):
            pass
    return total / 2**30, anon / 2**30


def child(path: str, input_path: str, out: str, result_file: str, partition_mb: str) -> None:
    """Run the four stages on one path and write timings, counts, peak RSS and output digests as JSON."""
    from loraflow.schemas.config import CleanConfig, DataConfig, SplitConfig
    from loraflow.tasks.data import stages as data_stages

    engine, _, workers = path.partition(":")
    config = DataConfig(streaming="off" if path == "memory" else "on", engine="dask" if engine == "dask" else "local",
                        workers=int(workers or 2), partition_mb=float(partition_mb))
    peak = [0.0, 0.0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.5):
            peak[:] = [max(a, b) for a, b in zip(peak, _rss_tree_gib())]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timings = {}

    def timed(name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        return result

    if engine == "dask":  # the cluster's start is not stage work: start it before the clock runs
        timed("start cluster (not counted)", lambda: data_stages.engine_for("dask", int(workers or 2)))
    ingested = timed("ingest", lambda: data_stages.ingest(input_path, config, out))
    validated = timed("validate", lambda: data_stages.validate(ingested, config, ["en", "zh"], None, 4096, out))
    cleaned = timed("clean + dedup", lambda: data_stages.clean(validated, CleanConfig(), ["en", "zh"], out))
    split = timed("split + leakage check", lambda: data_stages.split(cleaned, SplitConfig(), out))
    stop.set()
    digests = {}
    for name in OUTPUTS:
        h = hashlib.sha256()
        with open(Path(out) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)
        digests[name] = h.hexdigest()
    Path(result_file).write_text(json.dumps({
        "path": path, "timings": timings, "peak_rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_rss_tree": max(peak[0], _rss_tree_gib()[0]), "peak_rss_anon": peak[1], "digests": digests,
        "counts": {s.stage: s.counts for s in (ingested, validated, cleaned, split)}}))


def markdown(n: int, results: list[dict], load_before: float, gen: dict, when: str, partition_mb: float = 64.0) -> str:
    from bench_common import cpu_name

    lines = [f"### {n:,} records, {when} UTC", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, 1-min load average "
             f"before the run {load_before:.2f} (a shared machine). Generated {gen['exact']:,} exact and {gen['near']:,} near copies.",
             f"Command: `benchmarks/data_scale_bench.py --records {n} --paths {','.join(r['path'] for r in results)} "
             f"--partition-mb {partition_mb:g}`", "",
             "| path | stage | wall s | records/s (wall) | CPU s (driver) |", "|---|---|---:|---:|---:|"]
    for r in results:
        stages = {k: v for k, v in r["timings"].items() if "not counted" not in k}
        total = [sum(v[i] for v in stages.values()) for i in (0, 1)]
        for stage, (wall, cpu) in [*r["timings"].items(), ("**ingest + validate + clean + split**", total)]:
            lines.append(f"| {r['path']} | {stage} | {wall:.1f} | {n / wall:,.0f} | {cpu:.1f} |")
        r["total_wall"] = total[0]
    lines += ["", "| path | total wall s | ratio to the first path | peak RSS, process (GiB) | peak RSS, process + workers, "
              "sampled (GiB) | of which anonymous, sampled (GiB) |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        anon = f"{r['peak_rss_anon']:.2f}" if "peak_rss_anon" in r else "-"
        lines.append(f"| {r['path']} | {r['total_wall']:.1f} | {r['total_wall'] / results[0]['total_wall']:.3f} | "
                     f"{r['peak_rss_self']:.2f} | {r['peak_rss_tree']:.2f} | {anon} |")
    same = all(r["digests"] == results[0]["digests"] for r in results)
    c = results[0]["counts"]
    lines += ["", f"Output files (ingested, validated, both quarantines, cleaned, removed, review, train/val/test) "
              f"byte-identical across the paths: **{'yes' if same else 'NO'}**. Kept {c['clean']['kept']:,}; removed "
              f"{c['clean']['removed']}; review {c['clean']['review']}; quarantined {c['ingest']['quarantined'] + c['validate']['quarantined']}; "
              f"splits {c['split']['train']:,}/{c['split']['val']:,}/{c['split']['test']:,}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--paths", default="memory,stream", help="comma-separated: memory, stream, dask:N (N workers)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--partition-mb", type=float, default=64.0, help="data.partition_mb of the streamed paths")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from data_bench import generate

    load_before = os.getloadavg()[0]
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}"
    results = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        src = Path(tmp) / "in.jsonl"
        gen = generate(src, args.records)
        for path in args.paths.split(","):
            out, result = Path(tmp) / path.replace(":", "-"), Path(tmp) / f"{path.replace(':', '-')}.json"
            subprocess.run([sys.executable, __file__, "--child", path, str(src), str(out), str(result), str(args.partition_mb)],
                           check=True)
            results.append(json.loads(result.read_text()))
            subprocess.run(["rm", "-rf", str(out)], check=True)
            print(f"{path}: done", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"records": args.records, "load_before": load_before, "when": when,
                                               "generated": gen, "results": results}, indent=1))
    print(markdown(args.records, results, load_before, gen, when, args.partition_mb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
