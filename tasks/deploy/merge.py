"""Merge a LoRA adapter into a 16/32-bit copy of its base and prove the merged model answers like the adapter."""
import json
import shutil
from pathlib import Path
from typing import Any

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.stop_tokens import eos_ids
from loraflow.tasks.common.device import device as current_device, inference_dtype
from loraflow.tasks.common.errors import LoraflowError

PARITY_REPORT = "parity.json"  # in the run folder's model/
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_merge_dtype(dtype: str) -> str:
    """The storage dtype for the merged model: float32 on CPU, bfloat16 (else float16) on CUDA for `auto`."""
    if dtype not in _DTYPES:
        raise LoraflowError(f"deploy.merge_dtype={dtype!r} is not one of {', '.join(_DTYPES)}; pick one of them.")
    if dtype != "auto":
        return dtype
    return str(inference_dtype()).removeprefix("torch.")


def merge_adapter(
    base_model_path: str,
    adapter_path: str,
    out_dir: str,
    method: str,
    parity_prompts: list[list[dict]],
    tolerance: float,
    *,
    dtype: str = "auto",
    tolerance_16bit: float = 1.0,
    max_new_tokens: int = 16,
) -> dict:
    """Merge the adapter into the base (never into a 4-bit base), save it with its tokenizer, and check parity.

    Args:
        method: the training method (`lora`, `qlora`, `full`); `full` has no adapter, so the model is re-saved.
        tolerance / tolerance_16bit: largest max-abs logit difference for float32 / 16-bit storage.
    Returns:
        {"merged_path", "dtype", "parity": {...}, "size_bytes"}; raises LoraflowError when parity fails.
    """
    import torch

    storage_dtype = resolve_merge_dtype(dtype)
    _check_inputs(base_model_path, adapter_path, method, parity_prompts)
    merged_dir = RunFolder(out_dir).merged
    if merged_dir.exists():
        shutil.rmtree(merged_dir)  # a retry must not mix shards of two merges
    device = current_device()
    # QLoRA trained on a 4-bit base; the merge reloads the base in full precision (float32, merged exactly,
    # then cast) because folding a LoRA delta into 4-bit weights loses most of it.
    reference = _load_reference(base_model_path, adapter_path, method, device)
    tokenizer = load_tokenizer(adapter_path, fallback=base_model_path)
    expected = generate_with_logits(reference, tokenizer, parity_prompts, max_new_tokens)
    reference_eos = set(eos_ids(reference.generation_config.eos_token_id))
    merged = reference.merge_and_unload() if method != "full" else reference
    merged = merged.to(getattr(torch, storage_dtype))
    merged.config.dtype = getattr(torch, storage_dtype)
    merged.save_pretrained(merged_dir, safe_serialization=True)
    tokenizer.save_pretrained(merged_dir)
    del merged, reference
    limit = tolerance if storage_dtype == "float32" else tolerance_16bit
    parity = _verify(merged_dir, expected, reference_eos, tokenizer, parity_prompts, max_new_tokens, limit, Path(out_dir))
    return {"merged_path": str(merged_dir), "dtype": storage_dtype, "parity": parity, "size_bytes": dir_size(merged_dir)}


def check_parity(
    base_model_path: str, adapter_path: str, merged_path: str, method: str, parity_prompts: list[list[dict]],
    tolerance: float, *, tolerance_16bit: float = 1.0, max_new_tokens: int = 16, report_dir: str | None = None,
) -> dict:
    """Check an already merged model against base+adapter; returns the parity dict or raises LoraflowError."""
    _check_inputs(base_model_path, adapter_path, method, parity_prompts)
    device = current_device()
    reference = _load_reference(base_model_path, adapter_path, method, device)
    tokenizer = load_tokenizer(adapter_path, fallback=base_model_path)
    expected = generate_with_logits(reference, tokenizer, parity_prompts, max_new_tokens)
    reference_eos = set(eos_ids(reference.generation_config.eos_token_id))
    del reference
    limit = tolerance if _stored_dtype(Path(merged_path)) == "float32" else tolerance_16bit
    out = Path(report_dir) if report_dir else Path(merged_path).parent.parent
    return _verify(Path(merged_path), expected, reference_eos, tokenizer, parity_prompts, max_new_tokens, limit, out)


def _verify(
    merged_dir: Path, expected: list[dict], reference_eos: set[int], tokenizer: Any, prompts: list[list[dict]],
    max_new_tokens: int, limit: float, out_dir: Path,
) -> dict:
    """Reload the saved merged model in float32, compare it with the reference outputs, write the report, gate."""
    import torch
    from transformers import AutoModelForCausalLM

    device = current_device()
    # float32 isolates what the merge and the 16-bit storage changed from bf16 arithmetic noise at run time.
    reloaded = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).to(device).eval()
    parity = compare_parity(
        expected, reference_eos, reloaded, load_tokenizer(merged_dir), tokenizer, prompts, max_new_tokens, limit
    )
    parity["storage_dtype"] = _stored_dtype(merged_dir)
    report = RunFolder(out_dir).model / PARITY_REPORT
    _write_report(report, parity)
    if not parity["passed"]:
        raise LoraflowError(
            f"the merged model in {merged_dir} does not match the adapter model ({'; '.join(parity['problems'])}); "
            f"the deploy is blocked - see {report}; check that the adapter was trained on this base, or raise "
            "deploy.parity_tolerance if the difference is expected."
        )
    return parity


def _stored_dtype(model_dir: Path) -> str:
    """The dtype a saved model's config.json declares (float32 when absent)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def _check_inputs(base_model_path: str, adapter_path: str, method: str, prompts: list[list[dict]]) -> None:
    """Fail early with one clear sentence when a path, the method or the prompts are wrong."""
    if method not in ("lora", "qlora", "full"):
        raise LoraflowError(f"train.method={method!r} cannot be merged; use lora, qlora or full.")
    if method != "full" and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise LoraflowError(f"no adapter_config.json in {adapter_path}; point the merge at the run's model/adapter folder.")
    if method != "full" and not Path(base_model_path).exists():
        raise LoraflowError(f"base model folder {base_model_path} does not exist; pass the local base the adapter was trained on.")
    if not prompts:
        raise LoraflowError("the parity check got no prompts; pass held-out test conversations (deploy.parity_prompts).")


def _load_reference(base_model_path: str, adapter_path: str, method: str, device: str) -> Any:
    """The model the merge must reproduce: the float32 base with the adapter on top (or the full model)."""
    import torch
    from transformers import AutoModelForCausalLM

    if method == "full":
        return AutoModelForCausalLM.from_pretrained(adapter_path, dtype=torch.float32).to(device).eval()
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32).to(device)
    return PeftModel.from_pretrained(base, adapter_path).eval()


def load_tokenizer(path: str | Path, fallback: str | Path | None = None) -> Any:
    """The tokenizer saved with a model or adapter, else the one of the fallback (the base)."""
    from transformers import AutoTokenizer

    has_own = any((Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
    return AutoTokenizer.from_pretrained(path if has_own or fallback is None else fallback)


def prompt_ids(tokenizer: Any, messages: list[dict]) -> Any:
    """Token ids of a conversation's prompt: the trailing reference answer dropped, the assistant header added."""
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    return encoded["input_ids"]


def generate_with_logits(model: Any, tokenizer: Any, prompts: list[list[dict]], max_new_tokens: int) -> list[dict]:
    """Greedy continuations with the prompt logits and each generated step's logits (float32, on the CPU)."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # TF32 (which training may have switched on) would add ~1e-2 of noise to float32 logits on a GPU.
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        results = _generate(model, tokenizer, prompts, max_new_tokens, device, pad_id)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return results


def _generate(model: Any, tokenizer: Any, prompts: list[list[dict]], max_new_tokens: int, device: Any, pad_id: int) -> list[dict]:
    """The greedy generation loop of generate_with_logits."""
    import torch

    results = []
    with torch.no_grad():
        for messages in prompts:
            ids = prompt_ids(tokenizer, messages).to(device)
            prompt_logits = model(input_ids=ids).logits[0].float().cpu()
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                pad_token_id=pad_id, output_logits=True, return_dict_in_generate=True,
            )
            new_tokens = out.sequences[0, ids.shape[1]:].cpu().tolist()
            step_logits = torch.stack([step[0].float().cpu() for step in out.logits])
            results.append({"tokens": new_tokens, "prompt_logits": prompt_logits, "step_logits": step_logits})
    return results


def compare_parity(
    expected: list[dict], reference_eos: set[int], candidate: Any, candidate_tokenizer: Any, reference_tokenizer: Any,
    prompts: list[list[dict]], max_new_tokens: int, tolerance: float,
) -> dict:
    """Compare a candidate model with the reference's greedy outputs and logits; also its chat template and EOS."""
    actual = generate_with_logits(candidate, reference_tokenizer, prompts, max_new_tokens)
    max_diff, differing = 0.0, []
    for index, (want, got) in enumerate(zip(expected, actual)):
        max_diff = max(max_diff, float((want["prompt_logits"] - got["prompt_logits"]).abs().max()))
        if want["tokens"] != got["tokens"]:
            differing.append(index)
            continue
        if len(want["step_logits"]):
            max_diff = max(max_diff, float((want["step_logits"] - got["step_logits"]).abs().max()))
    checks = {
        "chat_template_equal": candidate_tokenizer.chat_template == reference_tokenizer.chat_template,
        "eos_token_equal": (candidate_tokenizer.eos_token, candidate_tokenizer.eos_token_id)
        == (reference_tokenizer.eos_token, reference_tokenizer.eos_token_id),
        "tokenizer_equal": candidate_tokenizer.get_vocab() == reference_tokenizer.get_vocab(),
        "generation_eos_equal": set(eos_ids(candidate.generation_config.eos_token_id)) == reference_eos,
    }
    problems = [f"max abs logit diff {max_diff:.3g} > tolerance {tolerance:g}"] if max_diff > tolerance else []
    if differing:
        problems.append(f"greedy output differs on prompt(s) {differing}")
    problems += [f"{name.removesuffix('_equal').replace('_', ' ')} differs" for name, ok in checks.items() if not ok]
    return {
        "passed": not problems, "problems": problems, "max_abs_logit_diff": max_diff, "tolerance": tolerance,
        "outputs_equal": not differing, "differing_prompts": differing, "prompts": len(prompts),
        "max_new_tokens": max_new_tokens, **checks,
    }


def _write_report(path: Path, parity: dict) -> None:
    """Persist the parity result next to the merged model so a blocked deploy can be inspected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(parity, indent=2), encoding="utf-8")


def dir_size(path: str | Path) -> int:
    """Bytes on disk of a file or of every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
