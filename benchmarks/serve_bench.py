"""Serving speed: the built-in backend under concurrent requests against one-request-at-a-time `generate`, same run.

Needs only torch, transformers, fastapi, uvicorn, httpx and this repo (no MLflow, no Prefect), so it runs on the GPU
machine as well as on the CPU:
    .venv/bin/python benchmarks/serve_bench.py --models tiny smollm2 --requests 32 --concurrency 8 --max-tokens 32
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_common import add_model_options, apply_threads, emit_json, print_report, run_models  # noqa: E402
from loraflow.services.serving.app import ServerState, create_app  # noqa: E402
from loraflow.services.serving.engine import BatchingEngine  # noqa: E402
from loraflow.services.serving.loading import load_bundle  # noqa: E402

TICKETS = [
    "My order 4411 for a blue kettle arrived broken, please help.",
    "订单 2231 的耳机没有声音，已经重启过手机了，还是不行。",
    "I was charged twice for my subscription this month. Please refund one of the payments as soon as possible.",
    "The app crashes when I open settings.",
    "请帮我把收货地址改成上海市浦东新区，订单号 9001。",
    "Hello, I cannot log in since the last update; the password reset email never arrives, and I have checked spam.",
    "Where is my parcel? Tracking says delivered but nothing came.",
    "发票抬头写错了，需要重新开具。",
]
SYSTEM = "Extract the ticket into JSON with the fields category, priority and product."


def prompts(n: int) -> list[list[dict]]:
    """n chat requests of varied length (English and Chinese support tickets)."""
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": TICKETS[i % len(TICKETS)]}] for i in range(n)]


def resolve(name: str, cache_dir: str) -> str:
    """A local model folder for tiny / smollm2 / random-1b / a path."""
    from loraflow.tasks.common.base_model import SMOLLM2, TINY, resolve_base_model

    if name == "random-1b":
        return build_random_1b(Path(cache_dir), resolve_base_model(TINY, None, None, cache_dir, TICKETS))
    alias = {"tiny": TINY, "smollm2": SMOLLM2}.get(name, name)
    return resolve_base_model(alias, None, None, cache_dir, TICKETS)


def build_random_1b(cache_dir: Path, tokenizer_dir: str) -> str:
    """Random weights in TinyLlama-1.1B's shape (22 layers, hidden 2048, GQA 32/4): real compute where no checkpoint is.

    The vocabulary is the tiny tokenizer's, so every sampled token decodes to text (time to first token stays honest);
    the LM head is therefore smaller than a real 1.1B model's.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = cache_dir / "random-1b-v2"
    if (out / "config.json").is_file():
        return str(out)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(mode: str, concurrency: int, latencies: list[float], tokens: int, seconds: float, ttft: list[float] | None = None) -> dict:
    return {
        "mode": mode, "concurrency": concurrency, "requests": len(latencies), "completion_tokens": tokens,
        "seconds": round(seconds, 2), "requests_per_s": round(len(latencies) / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "ttft_p50_ms": round(statistics.median(ttft) * 1000, 1) if ttft else None,
    }


def sequential_generate(bundle, requests: list[list[dict]], max_tokens: int) -> dict:
    """The baseline: transformers `generate` on one request at a time (greedy, exactly max_tokens new tokens)."""
    import torch

    tokenizer, model = bundle.tokenizer, bundle.model
    latencies, tokens = [], 0
    start = time.perf_counter()
    for messages in requests:
        began = time.perf_counter()
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(bundle.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False, pad_token_id=bundle.pad_id)
        tokens += out.shape[1] - inputs["input_ids"].shape[1]
        decoded = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        assert isinstance(decoded, str)
        latencies.append(time.perf_counter() - began)
    return summary("generate, one at a time", 1, latencies, tokens, time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(url: str, requests: list[list[dict]], max_tokens: int, concurrency: int) -> tuple[list[float], list[float], int]:
    """Closed loop: `concurrency` clients each send their next request when the last one finished (streaming)."""
    import httpx

    queue = list(enumerate(requests))
    latencies, ttfts, tokens = [], [], 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            _, messages = queue.pop(0)
            body = {"model": "bench", "messages": messages, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                    "stream": True, "stream_options": {"include_usage": True}}
            began, first = time.perf_counter(), None
            async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("usage"):
                        tokens += chunk["usage"]["completion_tokens"]
                    elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        first = time.perf_counter()
            latencies.append(time.perf_counter() - began)
            ttfts.append((first or time.perf_counter()) - began)

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return latencies, ttfts, tokens


def drive_process(url: str, requests: list[list[dict]], max_tokens: int, concurrency: int, results) -> None:
    """Run the clients in their own process, as remote clients would be, so they do not take the server's GIL."""
    start = time.perf_counter()
    latencies, ttfts, tokens = asyncio.run(drive(url, requests, max_tokens, concurrency))
    results.put((latencies, ttfts, tokens, time.perf_counter() - start))


def served(bundle, requests, args, concurrency: int) -> dict:
    """The built-in backend behind the real HTTP server, `concurrency` requests in flight."""
    import uvicorn

    engine = BatchingEngine(bundle, max_batch_size=max(concurrency, 1), batch_wait_ms=args.batch_wait_ms,
                            default_max_tokens=args.max_tokens).start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ServerState("bench", engine)), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        client = context.Process(target=drive_process, args=(f"http://127.0.0.1:{port}", requests, args.max_tokens, concurrency, results))
        client.start()
        latencies, ttfts, tokens, seconds = results.get()
        client.join()
    finally:
        server.should_exit = True
        thread.join(30)
        engine.stop()
    result = summary(f"server, {concurrency} concurrent", concurrency, latencies, tokens, seconds, ttfts)
    result["mean_batch"] = round(engine.decode_rows / max(engine.decode_steps, 1), 2)
    result["joined_running_batch"] = engine.joined_running
    return result


def in_thread(fn, *args):
    """Run fn in a worker thread, as the engine runs its batches: on a busy CPU, torch ops called from the main
    thread measured up to 10x slower here than the same ops from another thread, which would flatter the server."""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    thread.join()
    return result[0]


def bench_model(name: str, args) -> list[dict]:
    bundle = load_bundle(resolve(name, args.cache_dir), device=args.device)
    requests = prompts(args.requests)
    in_thread(sequential_generate, bundle, requests[:2], 4)  # warm-up: first-call allocations and kernel selection
    rows = [in_thread(sequential_generate, bundle, requests, args.max_tokens)]
    for concurrency in sorted({1, args.concurrency}):
        rows.append(served(bundle, requests, args, concurrency))
    for row in rows:
        row["model"] = name
        row["speedup_vs_generate"] = round(row["tokens_per_s"] / rows[0]["tokens_per_s"], 2)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"],
                        help="tiny, smollm2, random-1b (TinyLlama-1.1B-shaped random weights) or local model folders")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (= the engine's max batch size)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per request (EOS ignored, so every mode makes the same number)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_model_options(parser)
    args = parser.parse_args()
    apply_threads(args)
    when, header, results = run_models(args.models, lambda name: bench_model(name, args))
    print_report("Serving throughput and latency", when, header,
                 ["model", "mode", "requests", "tokens", "seconds", "tokens/s", "requests/s", "p50 ms", "p99 ms",
                  "TTFT p50 ms", "mean batch", "vs generate"],
                 [[r["model"], r["mode"], r["requests"], r["completion_tokens"], r["seconds"], r["tokens_per_s"],
                   r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["ttft_p50_ms"] or "-", r.get("mean_batch", "-"),
                   f"{r['speedup_vs_generate']}x"] for r in results])
    return emit_json(when, header, results, args.json)


if __name__ == "__main__":
    sys.exit(main())
