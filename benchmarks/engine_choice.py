"""Dask or Ray for `data.engine`: the same streamed stages on each, on a local cluster of N worker processes.

Measures, per framework: the cluster's cold start, the round trip of 200 empty tasks, and ingest -> validate ->
clean -> split of the data_bench records with the stages' partition work on the cluster (wall s, records/s), and
checks the outputs equal the local engine's. Ray is not a loraflow dependency: install it beside the venv to run
this (pip install --target DIR ray; PYTHONPATH=DIR).

    benchmarks/engine_choice.py --records 100000 --workers 2
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_scale_bench import OUTPUTS  # noqa: E402


class RayEngine:
    """The engine interface of loraflow.tasks.data.engine on Ray tasks (one CPU each)."""

    name = "ray"

    def __init__(self, workers: int):
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
        self.ray, self.workers, self.remote = ray, workers, {}

    def map(self, fn, items, **kwargs):
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self.ray.get([self.remote[fn].remote(item, **kwargs) for item in items])


def _noop(x):
    return x


def stages(engine, src: Path, out: Path, part_bytes: int) -> float:
    from loraflow.schemas.config import CleanConfig, DataConfig, SplitConfig
    from loraflow.tasks.data.streaming.clean import clean_stream
    from loraflow.tasks.data.streaming.ingest import ingest_stream
    from loraflow.tasks.data.streaming.split import split_stream
    from loraflow.tasks.data.streaming.validate import validate_stream

    t = time.perf_counter()
    i = ingest_stream(str(src), DataConfig(), str(out), engine, part_bytes)
    v = validate_stream(i["records"], DataConfig(), ["en", "zh"], None, 4096, str(out), engine, part_bytes)
    c = clean_stream(v["records"], CleanConfig(), ["en", "zh"], str(out), engine, part_bytes)
    split_stream(c["records"], SplitConfig(), str(out), engine, part_bytes)
    return time.perf_counter() - t


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for name in OUTPUTS:
        h.update((out / name).read_bytes())
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-mb", type=float, default=8.0, help="partition size (small: several per worker)")
    parser.add_argument("--frameworks", default="dask,ray")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from data_bench import generate
    from loraflow.tasks.data.engine import LocalEngine, engine_for

    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        src = Path(tmp) / "in.jsonl"
        generate(src, args.records)
        part = int(args.part_mb * 1e6)
        local_s = stages(LocalEngine(), src, Path(tmp) / "local", part)
        reference = digest(Path(tmp) / "local")
        rows.append(("local (in-process)", "-", "-", local_s, True, [local_s]))
        engines, start, tasks, walls, same = {}, {}, {}, {}, {}
        for name in args.frameworks.split(","):
            t = time.perf_counter()
            engines[name] = engine_for("dask", args.workers) if name == "dask" else RayEngine(args.workers)
            start[name] = time.perf_counter() - t
            engines[name].map(_noop, [0])  # workers warm
            t = time.perf_counter()
            engines[name].map(_noop, list(range(200)))
            tasks[name] = time.perf_counter() - t
        for rep in range(args.repeat):  # interleaved, so a change in the machine's load hits both
            for name, engine in engines.items():
                walls.setdefault(name, []).append(stages(engine, src, Path(tmp) / f"{name}{rep}", part))
                same[name] = same.get(name, True) and digest(Path(tmp) / f"{name}{rep}") == reference
                subprocess.run(["rm", "-rf", str(Path(tmp) / f"{name}{rep}")], check=True)
        for name in engines:
            rows.append((f"{name}, {args.workers} workers", f"{start[name]:.1f}", f"{tasks[name] * 1000 / 200:.1f}",
                         min(walls[name]), same[name], walls[name]))
    print(f"| engine | cold start s | ms per empty task (200) | stages wall s, best of {args.repeat} ({args.records:,} records) "
          "| records/s | every run, s | outputs equal local |\n|---|---:|---:|---:|---:|---|---|")
    for name, start, task_ms, wall, same, every in rows:
        print(f"| {name} | {start} | {task_ms} | {wall:.1f} | {args.records / wall:,.0f} | "
              f"{', '.join(f'{w:.1f}' for w in every)} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
