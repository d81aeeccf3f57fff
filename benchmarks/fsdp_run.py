#!/usr/bin/env python3
"""FSDP + QLoRA through loraflow's own launch: a random Llama-2-7B-shaped model trained by train_model on N GPUs.

    python3 benchmarks/fsdp_run.py build DIR [--shape 7b|tiny]          # model (bf16 safetensors) + tokenizer + data
    python3 benchmarks/fsdp_run.py train DIR RUN --gpus 2 --distributed fsdp --steps 8 --save-steps 4 --json OUT.json

`train` calls loraflow.tasks.training.train.train_model (which starts torchrun for N > 1 GPUs and returns rank 0's result) and writes
the result with the per-rank GPU memory (loading peak, the prepared model, the training peak), the logged losses, the
checkpoint it resumed from and the seconds; calling it again on the same RUN with more steps resumes. The data are
random words in the tiny model's ChatML tokenizer, long enough that every example fills --seq tokens.
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(folder: Path, shape: str, records: int, seq: int) -> None:
    """A random bf16 Llama of the shape with the tiny ChatML tokenizer, and train.jsonl of ~seq-token examples."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from loraflow.tasks.common.jsonl import write_jsonl
    from loraflow.tasks.common.base_model import build_tiny_model

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(folder / "tiny", ["Extract the ticket as JSON."]))
    dims = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32) if shape == "7b" else dict(hidden_size=256, intermediate_size=688,
                                                                       num_hidden_layers=2, num_attention_heads=4,
                                                                       num_key_value_heads=4)
    config = LlamaConfig(vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **dims)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    del model
    words = ["order", "late", "refund", "invoice", "account", "login", "shipping", "broken", "screen", "please"]
    rng = random.Random(0)

    def text(tokens: int) -> str:
        chosen: list[str] = []
        while len(tokenizer(" ".join(chosen))["input_ids"]) < tokens:
            chosen += [rng.choice(words) for _ in range(4)]
        return " ".join(chosen)

    prompt_len, answer_len = int(seq * 0.6), int(seq * 0.5)  # together past seq: every example is cut at seq
    rows = [{"id": f"r{i}", "metadata": {}, "messages": [{"role": "user", "content": text(prompt_len)},
                                                         {"role": "assistant", "content": text(answer_len)}]}
            for i in range(records)]
    write_jsonl(folder / "train.jsonl", rows)
    print(json.dumps({"built": str(folder), "shape": shape, "records": records}))


def train(folder: Path, run: Path, args) -> dict:
    """train_model on the built model and data; the result with losses and per-rank memory."""
    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.schemas.config.train import TrainConfig
    from loraflow.tasks.training.train import train_model

    lora = LoraConfig(r=16, alpha=32, dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                   "up_proj", "down_proj"])
    config = TrainConfig(method="qlora", micro_batch_size=args.batch, effective_batch_size=args.batch * args.gpus,
                         max_steps=args.steps, save_steps=args.save_steps, logging_steps=1, learning_rate=2e-4,
                         warmup_ratio=0.0, gradient_checkpointing=True, num_gpus=args.gpus,
                         distributed=args.distributed, lr_scheduler="constant_with_warmup",
                         **({"unchecked_layers": args.unchecked} if args.unchecked is not None else {}))
    started = time.perf_counter()
    result = train_model(str(folder / "model"), str(folder / "train.jsonl"), None, lora, config, args.seq, str(run))
    history = json.loads(Path(result.log_history).read_text())
    summary = {"gpus": args.gpus, "distributed": result.distributed, "seq": args.seq, "batch": args.batch,
               "seconds": time.perf_counter() - started, "resumed_from": result.resumed_from,
               "global_step": result.metrics["global_step"], "train_runtime": result.metrics.get("train_runtime"),
               "losses": [(h["step"], h["loss"]) for h in history if "loss" in h],
               "num_tokens": [h["num_tokens"] for h in history if "num_tokens" in h][-1:],
               "gpu_memory_per_rank": [m.to_dict() for m in result.gpu_memory_per_rank], "speed": result.speed.to_dict()}
    print(json.dumps(summary))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["build", "train"])
    parser.add_argument("folder")
    parser.add_argument("run", nargs="?")
    parser.add_argument("--shape", default="7b", choices=["7b", "tiny"])
    parser.add_argument("--records", type=int, default=128)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--distributed", default="fsdp", choices=["auto", "ddp", "fsdp"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--save-steps", type=int, default=4)
    parser.add_argument("--unchecked", type=int, default=None, help="train.unchecked_layers (default: auto)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.what == "build":
        build(Path(args.folder), args.shape, args.records, args.seq)
        return 0
    summary = train(Path(args.folder), Path(args.run), args)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
