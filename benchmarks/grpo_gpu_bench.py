#!/usr/bin/env python3
"""GRPO with LoRA on a GPU: loraflow's path against plain trl GRPO with a separate reference model, same process.

Both train a random 1B-shaped Llama (TinyLlama-1.1B dimensions: hidden 2048, 22 layers, 32 heads, 4 KV heads; a
30k word vocabulary), bf16, LoRA r=16 on the seven projections, gradient checkpointing, on random prompts of --prompt
words, sampling --generations completions of up to --completion tokens per prompt (HF generate; side loraflow_cb:
transformers' continuous batching, loraflow_vllm: vLLM colocate), KL beta 0.04:

- **loraflow**: loraflow.tasks.training.train.load_model + build_trainer with train.objective=grpo (trl's GRPOTrainer
  with the reference log-probs from the same model with the adapter switched off: one copy of the weights), and
  loraflow's speed options (LoRA dropout 0, fused AdamW, unchecked layers auto; compiled layers off for GRPO);
- **trl_separate_ref**: the plain recipe with a reference model of its own: GRPOTrainer(peft_config=LoRA r=16 dropout
  0.05), its reference set to a second bf16 copy of the base, torch AdamW.

Same prompts, batch (--prompts-per-step prompts x --generations completions per optimizer step, micro-batches of one
prompt group), reward (a deterministic hash of the completion, so groups differ), learning rate. Reported: tokens/s
(prompt + generated tokens of every completion, median step after --warm; a step includes its generation), peak
allocated GiB over the run, the memory held before training.

    python3 benchmarks/grpo_gpu_bench.py --json $OUT/grpo_gpu.json
    python benchmarks/grpo_gpu_bench.py --cpu --tiny --prompt 8 --completion 8 --generations 2 --prompts-per-step 2 --warm 1 --meas 1
"""
import argparse
import copy
import json
import statistics
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_stack as base  # noqa: E402
from preference_gpu_bench import VOCAB_WORDS, StepTimer, tokenizer  # noqa: E402

# loraflow's sides (--order) and the train.grpo.generation each samples through
GENERATION_SIDES = {"loraflow": "generate", "loraflow_cb": "continuous_batching", "loraflow_vllm": "vllm"}


def make_config(tiny: bool):
    """TinyLlama-1.1B dimensions over the bench's word vocabulary (or a 2-layer stand-in for CPU logic checks)."""
    from transformers import LlamaConfig

    vocab = VOCAB_WORDS + 3
    if tiny:
        return LlamaConfig(hidden_size=128, intermediate_size=344, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=2048, tie_word_embeddings=False,
                           bos_token_id=None, eos_token_id=1, pad_token_id=0)
    return LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4, vocab_size=vocab, max_position_embeddings=2048, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, bos_token_id=None, eos_token_id=1, pad_token_id=0)


def prompts(n: int, words: int):
    import datasets
    import torch

    g = torch.Generator().manual_seed(0)
    return datasets.Dataset.from_list([{"prompt": " ".join(f"w{i}" for i in torch.randint(0, VOCAB_WORDS, (words,),
                                                                                            generator=g).tolist())}
                                       for _ in range(n)])


def hashed_reward(completions, **_) -> list[float]:
    """A deterministic score per completion text in [0, 1): completions of one group differ, so advantages are not 0."""
    return [zlib.crc32(str(c).encode()) / 2**32 for c in completions]


def measure(label: str, trainer, timer, args, cuda: bool) -> dict:
    import torch

    base.free()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / base.GIB if cuda else None
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    completions = args.prompts_per_step * args.generations
    tokens = [completions * (args.prompt + h["completions/mean_length"]) for h in logged]
    times = timer.times[args.warm:]
    per_step = statistics.median(t / s for t, s in zip(tokens[args.warm:], times))
    row = {"label": label, "completions_per_step": completions, "tokens_per_step": tokens,
           "s_per_step_median": statistics.median(times), "tokens_per_s": per_step, "step_times_s": times,
           "warm_times_s": timer.times[:args.warm], "peak_alloc_GiB": peak, "held_at_start_GiB": timer.held,
           "kl": [h.get("kl") for h in logged], "mean_completion_length": [h["completions/mean_length"] for h in logged]}
    print(f"{label:18s} {per_step:8.0f} tok/s  peak {peak or 0:6.2f} GiB  held {timer.held or 0:6.2f} GiB  "
          f"{row['s_per_step_median']:.3f} s/step", flush=True)
    return row


def loraflow_side(cfg, args, dataset, dev: str, cuda: bool, side: str = "loraflow") -> dict:
    from loraflow.schemas.config.grpo import GrpoConfig
    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.schemas.config.train import TrainConfig
    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.training.train import build_trainer, load_model

    completions = args.prompts_per_step * args.generations
    train = TrainConfig(objective="grpo", method="lora", micro_batch_size=args.generations,
                        effective_batch_size=completions, max_steps=args.warm + args.meas, gradient_checkpointing=True,
                        learning_rate=base.LR, warmup_ratio=0.0, weight_decay=0.0, lr_scheduler="constant_with_warmup",
                        save_steps=10**6, logging_steps=1,
                        grpo=GrpoConfig(num_generations=args.generations, max_completion_length=args.completion, beta=0.04,
                                        generation=GENERATION_SIDES[side]))
    lora = LoraConfig(r=16, alpha=32, target_modules=base.TARGETS)  # loraflow's default dropout (0)
    max_length = args.prompt + args.completion
    speed = resolve_speed(train, dev, cfg.to_dict(), max_length, lora)
    state = base.random_state_dict(cfg, dev)
    model = load_model(None, "lora", dev, cuda, True, attn_implementation=speed.attn_implementation,
                       config=copy.deepcopy(cfg), state_dict=state)
    del state
    base.free()
    timer = StepTimer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(model, tokenizer(), train, lora, max_length, Path(tmp), cuda, dataset, None, [timer],
                                speed, rewards=([hashed_reward], [1.0]))
        assert trainer.ref_model is None  # the reference is the adapter switched off
        row = measure(side, trainer, timer, args, cuda)
    row["speed"] = speed.to_dict()
    del trainer, model
    base.free()
    return row


def trl_side(cfg, args, dataset, dev: str, cuda: bool) -> dict:
    import torch
    from peft import LoraConfig
    from transformers import LlamaForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    def bf16_model():
        state = base.random_state_dict(cfg, dev)  # the same seed: the reference is the policy's base
        model = LlamaForCausalLM.from_pretrained(None, config=copy.deepcopy(cfg), state_dict=state,
                                                 dtype=torch.bfloat16 if cuda else torch.float32,
                                                 device_map={"": 0 if cuda else "cpu"}, attn_implementation="sdpa")
        del state
        base.free()
        return model

    policy, ref = bf16_model(), bf16_model()
    timer = StepTimer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(output_dir=tmp, per_device_train_batch_size=args.generations,
                            gradient_accumulation_steps=args.prompts_per_step, max_steps=args.warm + args.meas,
                            learning_rate=base.LR, lr_scheduler_type="constant", bf16=cuda, gradient_checkpointing=True,
                            gradient_checkpointing_kwargs={"use_reentrant": False}, num_generations=args.generations,
                            max_completion_length=args.completion, beta=0.04, report_to=[], save_strategy="no",
                            logging_steps=1, optim="adamw_torch", use_cpu=not cuda)
        trainer = GRPOTrainer(model=policy, reward_funcs=[hashed_reward], args=config, train_dataset=dataset,
                              processing_class=tokenizer(), peft_config=LoraConfig(**base.LORA), callbacks=[timer])
        # trl computes a PEFT model's reference with the adapter off; the plain recipe keeps a frozen copy instead
        # (with the fused LM head trl gives its own reference model)
        from trl.trainer.grpo_trainer import add_fused_lm_head

        add_fused_lm_head(ref, temperature=config.temperature, cast_lm_head_to_fp32=config.cast_lm_head_to_fp32)
        trainer.ref_model = trainer.accelerator.prepare_model(ref.eval().requires_grad_(False), evaluation_mode=True)
        row = measure("trl_separate_ref", trainer, timer, args, cuda)
    del trainer, policy, ref
    base.free()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--prompt", type=int, default=128, help="prompt words (= tokens)")
    parser.add_argument("--completion", type=int, default=128, help="max_completion_length")
    parser.add_argument("--generations", type=int, default=8, help="num_generations (= micro-batch: one group)")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="prompt groups per optimizer step")
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--meas", type=int, default=3)
    parser.add_argument("--order", default="loraflow,trl", help="sides in the order they run: loraflow (HF generate), "
                        "loraflow_cb (train.grpo.generation=continuous_batching), loraflow_vllm (vLLM colocate), trl")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch

    cuda = not args.cpu and torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    cfg = make_config(args.tiny)
    dataset = prompts(args.prompts_per_step * (args.warm + args.meas + 1), args.prompt)
    result = {"argv": sys.argv[1:], "card": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": [], "errors": []}
    for side in args.order.split(","):
        try:
            if side in GENERATION_SIDES:
                result["rows"].append(loraflow_side(cfg, args, dataset, dev, cuda, side))
            else:
                result["rows"].append(trl_side(cfg, args, dataset, dev, cuda))
        except Exception as error:  # noqa: BLE001 - keep the other side's numbers
            import traceback

            result["errors"].append({"side": side, "error": repr(error)[:500], "traceback": traceback.format_exc()[-3000:]})
            print("ERROR", side, repr(error)[:300], flush=True)
            base.free()
    rows = {r["label"]: r for r in result["rows"]}
    if {"loraflow", "trl_separate_ref"} <= set(rows):
        ours, plain = rows["loraflow"], rows["trl_separate_ref"]
        result["speedup"] = ours["tokens_per_s"] / plain["tokens_per_s"]
        if cuda:
            result["peak_ratio"] = ours["peak_alloc_GiB"] / plain["peak_alloc_GiB"]
        print(f"loraflow / plain trl: {result['speedup']:.2f}x tokens/s, peak {result.get('peak_ratio', 0):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
