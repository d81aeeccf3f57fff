"""Load test of the feedback API on loopback: concurrent posts against a real uvicorn with SQLite.

Bounded by --requests and --max-seconds. Every 10th post is sent twice with the same Idempotency-Key (a client
retry), so the check is: distinct feedback accepted == rows stored. Prints a Markdown block for RESULTS.md.

    .venv/bin/python benchmarks/feedback_load.py --requests 2000 --concurrency 16
"""
import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench_common import cpu_name, markdown_table

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"
# The server process: the real app factory with the rate limit lifted (one client sends everything here)
# and the automatic trigger off (no Prefect in this measurement).
SERVER = """
import sys, uvicorn
from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.services.feedback_api import create_app
config = FeedbackConfig(database_url=sys.argv[1], trigger_threshold=0, rate_limit_per_second=1e9, rate_limit_burst=10**9)
uvicorn.run(create_app(config, token=sys.argv[3]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feedback(n: int) -> dict:
    kind = n % 3  # a third each: thumbs up, thumbs down, a correction with stars
    return {
        "messages": [{"role": "system", "content": "Extract the ticket as JSON."}, {"role": "user", "content": f"Ticket {n}: my invoice is wrong " * 4}],
        "output": '{"category": "billing", "priority": "low"}',
        "rating": ["up", "down", 2][kind],
        "correction": '{"category": "billing", "priority": "high"}' if kind == 2 else None,
        "model_version": "quickstart@3",
        "metadata": {"benchmark": True, "n": n},
    }


async def run_load(base: str, total: int, concurrency: int, max_seconds: float) -> dict:
    latencies, statuses, accepted_keys = [], {}, set()
    next_n, deadline = 0, time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_n
        while next_n < total and time.perf_counter() < deadline:
            n, next_n = next_n, next_n + 1
            key = f"bench-{n}"
            for _attempt in range(2 if n % 10 == 0 else 1):  # every 10th: a retry with the same key
                start = time.perf_counter()
                response = await client.post("/v1/feedback", json=feedback(n), headers={"Idempotency-Key": key})
                latencies.append(time.perf_counter() - start)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code in (200, 201):
                    accepted_keys.add(key)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stored = (await client.get("/v1/feedback", params={"limit": 1})).json()["total"]
    latencies.sort()
    return {
        "requests": len(latencies), "distinct_feedback": next_n, "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_distinct": len(accepted_keys), "stored": stored, "posted_equals_stored": len(accepted_keys) == stored,
    }


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"feedback server exited with {server.returncode} during start-up")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"feedback server not healthy after {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="Distinct feedback items to post (upper bound).")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent client connections.")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="Stop posting after this long.")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        port, url = free_port(), f"sqlite:///{Path(tmp) / 'feedback.db'}"
        env = os.environ | {"PYTHONPATH": str(ROOT), "LORAFLOW_HOME": tmp}
        server = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port), TOKEN], cwd=ROOT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, server)
            result = asyncio.run(run_load(base, args.requests, args.concurrency, args.max_seconds))
        finally:
            server.terminate()
            server.wait(30)

    machine = (f"{cpu_name()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
               f"1-min load average before the run {load_before:.2f} (a shared machine)")
    print(f"### Feedback API load, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {machine}. Server: one uvicorn process, SQLite (WAL) in a temp folder; client: httpx async on the same host.")
    print(f"Command: `benchmarks/feedback_load.py --requests {args.requests} --concurrency {args.concurrency} --max-seconds {args.max_seconds:g}`\n")
    statuses = ", ".join(f"{k}: {v}" for k, v in result["status_counts"].items())
    print(markdown_table(
        ["requests", "concurrency", "seconds", "requests/s", "p50 ms", "p99 ms", "max ms", "statuses", "distinct accepted",
         "stored", "posted = stored"],
        [[result["requests"], args.concurrency, result["seconds"], result["requests_per_s"], result["p50_ms"],
          result["p99_ms"], result["max_ms"], statuses, result["accepted_distinct"], result["stored"],
          "yes" if result["posted_equals_stored"] else "NO"]]) + "\n")
    print("```json\n" + json.dumps(result) + "\n```")
    return 0 if result["posted_equals_stored"] else 1


if __name__ == "__main__":
    sys.exit(main())
