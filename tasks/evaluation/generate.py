"""Greedy generation for evaluation: the test prompts through a model (plus adapter), batched and left-padded."""
import sys
import time
from pathlib import Path

from loraflow.tasks.common.stop_tokens import stop_token_ids
from loraflow.tasks.common.device import device as current_device, inference_dtype
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import iter_jsonl
from loraflow.tasks.common.model_variants import is_bitsandbytes_folder, load_variant
from loraflow.tasks.evaluation.constrained import schema_processors
from loraflow.tasks.evaluation.fast_generate import fast_generation_plan, generate_fast


def split_record(record: dict, where: str) -> tuple[list[dict], str]:
    """The prompt turns (everything before the last assistant turn) and the reference answer."""
    messages = record.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        raise LoraflowError(
            f"{where}: record {record.get('id')!r} has no prompt followed by an assistant turn; "
            "every test record must end with the reference answer as an assistant message."
        )
    return messages[:last], messages[last]["content"]


def load_test_records(records_path: str, max_samples: int | None = None) -> list[dict]:
    """The first max_samples canonical records of a JSON Lines file (all when None)."""
    path = Path(records_path)
    if not path.is_file():
        raise LoraflowError(f"test set {records_path} does not exist; run the data stages first or pass the right path.")
    records = []
    for record in iter_jsonl(path):
        if max_samples is not None and len(records) >= max_samples:
            break
        records.append(record)
    return records


def load_model(model_path: str, adapter_path: str | None = None):
    """Tokenizer (left padding) and eval-mode model on CUDA when available, adapter merged in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(model_path).exists():
        raise LoraflowError(f"model path {model_path} does not exist; set model.name_or_path to a local model folder.")
    if adapter_path is not None and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise LoraflowError(f"adapter {adapter_path} has no adapter_config.json; point at the folder training wrote (DIR/model/adapter).")
    device = current_device()
    dtype = inference_dtype(device)
    # Training may save the tokenizer (its chat template) beside the adapter: prefer that one.
    has_own = adapter_path is not None and (Path(adapter_path) / "tokenizer_config.json").is_file()
    variant = adapter_path is None and _is_quantized_variant(Path(model_path))
    tokenizer_source = Path(model_path).parent if Path(model_path).suffix == ".gguf" else model_path
    tokenizer = AutoTokenizer.from_pretrained(adapter_path if has_own else tokenizer_source)
    if not getattr(tokenizer, "chat_template", None):
        raise LoraflowError(f"tokenizer of {model_path} has no chat template; use an instruct/chat model or add one to tokenizer_config.json.")
    tokenizer.padding_side = "left"  # decoder-only models continue from the last position: pad on the left
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if variant:  # INT8/INT4/GGUF variants of the merged model: loaded the way quantisation saved them
        model, _ = load_variant(model_path, device)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    if adapter_path is not None:
        from peft import PeftModel

        # Merged weights generate as fast as the base model and give the same outputs as the adapter.
        model = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    model.eval()
    return model, tokenizer


def _is_quantized_variant(path: Path) -> bool:
    """A .gguf file, or a folder whose config.json carries a bitsandbytes quantization_config."""
    return path.suffix == ".gguf" or ((path / "config.json").is_file() and is_bitsandbytes_folder(path))


def generate_for_records(
    model, tokenizer, records: list[dict], max_new_tokens: int, batch_size: int, desc: str = "generate", where: str = "test set",
    schema: dict | None = None,
) -> list[dict]:
    """Greedy answers for records; batch_size=1 is the one-at-a-time mode (no padding at all).

    schema: a JSON schema every answer must follow (loraflow.tasks.evaluation.constrained); None: unconstrained.

    Returns rows in input order: id, messages (prompt turns), reference, prediction, metadata and
    generation {prompt_tokens, new_tokens, hit_max_new_tokens, stopped_at_eos}.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    prompts = []
    for i, record in enumerate(records, start=1):
        turns, reference = split_record(record, f"{where}:{i}")
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        prompts.append((turns, reference, text))
    eos_ids = stop_token_ids(model, tokenizer)
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids
    )
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for _, _, text in prompts]
    # Batching prompts of similar length wastes less compute on padding; rows go back in input order.
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    rows: list[dict | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    fast = fast_generation_plan(model, batch_size, lengths, max_new_tokens)  # CUDA: static cache, compiled decode step
    with tqdm(total=len(prompts), desc=desc, unit="sample", file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            enc = tokenizer(
                [prompts[i][2] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            with torch.inference_mode():
                out = generate_fast(model, enc, config, fast, schema_processors(tokenizer, schema, eos_ids))
            new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
            for i, tokens in zip(batch, new_tokens, strict=True):
                rows[i] = _row(records[i], prompts[i], tokens, eos_ids, tokenizer, lengths[i], max_new_tokens)
            bar.update(len(batch))
    return rows  # type: ignore[return-value]


def _row(record, prompt, tokens, eos_ids, tokenizer, prompt_tokens, max_new_tokens) -> dict:
    """One prediction row: the answer up to (not including) the first EOS, padding dropped."""
    cut = next((j for j, t in enumerate(tokens) if t in eos_ids), None)
    answer = tokens if cut is None else tokens[:cut]
    turns, reference, _ = prompt
    return {
        "id": record.get("id"),
        "messages": turns,
        "reference": reference,
        "prediction": tokenizer.decode(answer, skip_special_tokens=True).strip(),
        "metadata": record.get("metadata") or {},
        "generation": {
            "prompt_tokens": prompt_tokens,
            "new_tokens": len(answer),
            "stopped_at_eos": cut is not None,
            "hit_max_new_tokens": cut is None and len(tokens) >= max_new_tokens,
        },
    }


def generate_predictions(
    model_path: str,
    adapter_path: str | None,
    records_path: str,
    max_new_tokens: int,
    batch_size: int,
    max_samples: int | None,
    desc: str = "generate",
    schema: dict | None = None,
) -> list[dict]:
    """Load model (+adapter) and greedily answer the test records; see generate_for_records for the rows."""
    records = load_test_records(records_path, max_samples)
    model, tokenizer = load_model(model_path, adapter_path)
    started = time.perf_counter()
    rows = generate_for_records(model, tokenizer, records, max_new_tokens, batch_size, desc=desc, where=records_path,
                                schema=schema)
    elapsed = time.perf_counter() - started
    print(f"{desc}: {len(rows)} samples in {elapsed:.1f}s ({len(rows) / max(elapsed, 1e-9):.2f} samples/s)", file=sys.stderr)
    return rows
