#!/usr/bin/env python3
"""DPO with QLoRA on a GPU: loraflow's path against plain trl DPO with a separate reference model, same process.

Both train a random Llama-2-7B-shaped model, quantized to NF4, with LoRA r=16 on the seven projections, on random
preference pairs (--prompt words of prompt, --answer words of chosen and of rejected answer, one token per word):

- **loraflow**: loraflow.tasks.training.train.load_model + build_trainer with train.objective=dpo (trl's DPOTrainer with ref_model=None:
  the reference log-probs come from the same model with the adapter switched off, so one copy of the weights), and
  loraflow's speed options (compiled layers, bf16 norms, LoRA dropout 0, fused AdamW, unchecked layers auto);
- **trl_separate_ref**: the plain recipe: from_pretrained + BitsAndBytesConfig, peft prepare_model_for_kbit_training,
  DPOTrainer(peft_config=LoRA r=16 dropout 0.05, ref_model=a second NF4 copy of the base), paged 8-bit AdamW.

Same batch, length, beta, learning rate and gradient checkpointing. Reported: tokens/s (chosen + rejected sequences,
prompt included, median step after --warm), peak allocated GiB over the measured steps, and the memory the models
hold before training.

    python3 benchmarks/preference_gpu_bench.py --json $OUT/preference_gpu.json
    python benchmarks/preference_gpu_bench.py --cpu --tiny --prompt 16 --answer 8 --batch 2 --warm 1 --meas 2
"""
import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_stack as base  # noqa: E402

VOCAB_WORDS = 30000


def tokenizer():
    """One token per word w0..w29999 (whitespace split), plus pad/eos/unk."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(VOCAB_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def pairs(n: int, prompt: int, answer: int):
    import datasets
    import torch

    g = torch.Generator().manual_seed(0)

    def words(k: int) -> str:
        return " ".join(f"w{i}" for i in torch.randint(0, VOCAB_WORDS, (k,), generator=g).tolist())

    return datasets.Dataset.from_list([{"prompt": words(prompt), "chosen": " " + words(answer),
                                        "rejected": " " + words(answer)} for _ in range(n)])


class StepTimer:
    """A TrainerCallback: synchronized wall time per optimizer step, and the memory held when training starts."""

    def __new__(cls, cuda: bool):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def on_train_begin(self, *a, **k):
                import torch

                self.times, self.held = [], torch.cuda.memory_allocated() / base.GIB if cuda else None
                self.last = self._now()

            def _now(self):
                import torch

                if cuda:
                    torch.cuda.synchronize()
                return time.perf_counter()

            def on_step_end(self, *a, **k):
                now = self._now()
                self.times.append(now - self.last)
                self.last = now

        return _Timer()


def measure(label: str, trainer, timer, args, cuda: bool) -> dict:
    import torch

    base.free()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / base.GIB if cuda else None
    times = timer.times[args.warm:]
    tokens = args.batch * 2 * (args.prompt + args.answer + 1)  # chosen and rejected rows, each prompt + answer + EOS
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    row = {"label": label, "tokens_per_step": tokens, "s_per_step_median": statistics.median(times),
           "tokens_per_s": tokens / statistics.median(times), "step_times_s": times, "warm_times_s": timer.times[:args.warm],
           "peak_alloc_GiB": peak, "held_at_start_GiB": timer.held, "losses": losses}
    print(f"{label:18s} {row['tokens_per_s']:8.0f} tok/s  peak {peak or 0:6.2f} GiB  held {timer.held or 0:6.2f} GiB  "
          f"{row['s_per_step_median']:.3f} s/step", flush=True)
    return row


def loraflow_side(cfg, args, dataset, dev: str, cuda: bool) -> dict:
    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.schemas.config.train import TrainConfig
    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.training.train import build_trainer, load_model

    train = TrainConfig(objective="dpo", method="qlora", micro_batch_size=args.batch, effective_batch_size=args.batch,
                        max_steps=args.warm + args.meas, gradient_checkpointing=True, learning_rate=base.LR,
                        warmup_ratio=0.0, weight_decay=0.0, lr_scheduler="constant_with_warmup", save_steps=10**6,
                        preference_beta=0.1)
    lora = LoraConfig(r=16, alpha=32, target_modules=base.TARGETS)  # loraflow's default dropout (0)
    max_length = args.prompt + args.answer + 1
    speed = resolve_speed(train, dev, cfg.to_dict(), max_length, lora)
    state = base.random_state_dict(cfg, dev)
    model = load_model(None, "qlora", dev, cuda, True, attn_implementation=speed.attn_implementation,
                       config=copy.deepcopy(cfg), state_dict=state)
    del state
    base.free()
    timer = StepTimer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(model, tokenizer(), train, lora, max_length, Path(tmp), cuda, dataset, None, [timer],
                                speed)
        row = measure("loraflow", trainer, timer, args, cuda)
    row["speed"] = speed.to_dict()
    del trainer, model
    base.free()
    return row


def trl_side(cfg, args, dataset, dev: str, cuda: bool) -> dict:
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    def quantized():
        state = base.random_state_dict(cfg, dev)  # the same seed: the reference is the policy's base
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        model = LlamaForCausalLM.from_pretrained(None, config=copy.deepcopy(cfg), state_dict=state,
                                                 quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0 if cuda else "cpu"}, attn_implementation="sdpa")
        del state
        base.free()
        return model

    policy = prepare_model_for_kbit_training(quantized(), use_gradient_checkpointing=True,
                                             gradient_checkpointing_kwargs={"use_reentrant": False})
    ref = quantized()
    timer = StepTimer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        config = DPOConfig(output_dir=tmp, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                           max_steps=args.warm + args.meas, learning_rate=base.LR, lr_scheduler_type="constant",
                           bf16=cuda, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
                           max_length=args.prompt + args.answer + 1, beta=0.1, report_to=[], save_strategy="no",
                           logging_steps=1, optim="paged_adamw_8bit" if cuda else "adamw_torch", use_cpu=not cuda)
        trainer = DPOTrainer(model=policy, ref_model=ref, args=config, train_dataset=dataset,
                             processing_class=tokenizer(), peft_config=LoraConfig(**base.LORA), callbacks=[timer])
        row = measure("trl_separate_ref", trainer, timer, args, cuda)
    del trainer, policy, ref
    base.free()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--prompt", type=int, default=512, help="prompt words (= tokens)")
    parser.add_argument("--answer", type=int, default=511, help="words of the chosen and of the rejected answer")
    parser.add_argument("--batch", type=int, default=4, help="pairs per micro-batch (= per optimizer step)")
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--meas", type=int, default=5)
    parser.add_argument("--order", default="loraflow,trl", help="sides in the order they run")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch

    cuda = not args.cpu and torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    cfg = base.make_config(args.tiny)
    dataset = pairs(args.batch * (args.warm + args.meas) + args.batch, args.prompt, args.answer)
    result = {"argv": sys.argv[1:], "card": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": [], "errors": []}
    for side in args.order.split(","):
        try:
            result["rows"].append((loraflow_side if side == "loraflow" else trl_side)(cfg, args, dataset, dev, cuda))
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
