"""The resource estimate for a PipelineConfig: detected device, token count of the data, the config's settings."""
import dataclasses
import json
from pathlib import Path

from loraflow.schemas.config import PipelineConfig
from loraflow.tasks.planning.auto_settings import auto_offload_activations, auto_unchecked_layers, pick_distributed
from loraflow.tasks.planning.estimate_context import context_limits, host_memory_gib, offloaded_host_bytes
from loraflow.tasks.planning.estimate import ResourceEstimate, estimate_resources
from loraflow.tasks.planning.estimate_objective import Generation
from loraflow.tasks.planning.estimate_packing import packed_plan
from loraflow.tasks.planning.estimate_shapes import load_model_config, residual_bytes
from loraflow.tasks.planning.lengths import approx_tokens, choose_max_length, model_context_limit
from loraflow.tasks.planning.schedule import declared_classes, resolve_schedule
from loraflow.tasks.common.device import detect_device
from loraflow.tasks.common.jsonl import iter_jsonl



def detect_gpu_count() -> int:
    """Visible CUDA GPUs (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def count_record_tokens(path: str | Path, max_length: int | None = None) -> int:
    """Approximate training tokens in a canonical JSONL file, each record cut at max_length as training does."""
    total = 0
    for record in iter_jsonl(path):
        tokens = approx_tokens(" ".join(m.get("content", "") for m in record.get("messages", []))) + 4 * len(record.get("messages", []))
        total += min(tokens, max_length) if max_length else tokens
    return total


def raw_record_tokens(path: str | Path) -> list[int] | None:
    """Approximate tokens per record of a raw JSON Lines/JSON file (a broken line counts as one record); None for
    other file types, where records are not told apart without ingesting."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json"):
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    chunks = [text] if suffix == ".json" else [line for line in text.splitlines() if line.strip()]
    lengths = []
    for chunk in chunks:
        try:
            rows = json.loads(chunk)
        except json.JSONDecodeError:
            lengths.append(approx_tokens(chunk))  # a broken line: the ingest stage quarantines it
            continue
        for row in rows if isinstance(rows, list) else [rows]:
            strings = _strings(row)
            lengths.append(approx_tokens(" ".join(strings)) + 4 * len(strings))
    return lengths


def record_token_lengths(path: str | Path, max_length: int) -> list[int]:
    """Approximate tokens of each record of a canonical JSONL file (as count_record_tokens counts), cut at max_length."""
    return [min(max_length, approx_tokens(" ".join(m.get("content", "") for m in r.get("messages", [])))
                + 4 * len(r.get("messages", []))) for r in iter_jsonl(path)]


def count_raw_tokens(path: str | Path, max_length: int | None = None) -> int:
    """Approximate tokens in a raw input file: per record for JSON Lines/JSON (cut at max_length), whole text otherwise."""
    path = Path(path)
    lengths = raw_record_tokens(path)
    if lengths is not None:
        return sum(min(t, max_length) if max_length else t for t in lengths)
    if path.suffix.lower() == ".parquet":
        import pandas as pd

        return approx_tokens(json.dumps(pd.read_parquet(path).to_dict(orient="records"), ensure_ascii=False, default=str))
    return approx_tokens(path.read_text(encoding="utf-8", errors="replace"))


def planned_max_length(config: PipelineConfig, model_config: dict, lengths: list[int] | None) -> int:
    """model.max_length, or for `auto` the length the raw records call for (`lengths`: their approximate token counts;
    the data flow measures it exactly with the tokenizer before training)."""
    if config.model.max_length != "auto":
        return int(config.model.max_length)
    return choose_max_length(lengths or [], model_context_limit(model_config))


def _strings(value, key: str | None = None) -> list[str]:
    """The text a record trains on: every string value except ids and metadata."""
    if key in ("id", "metadata"):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("role", "from") for s in _strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def train_tokens_for(config: PipelineConfig, max_length: int, train_jsonl: str | Path | None = None) -> tuple[int, str]:
    """Training tokens per epoch and where the number came from: the split train.jsonl, else the raw input x train share."""
    if train_jsonl and Path(train_jsonl).is_file():
        return count_record_tokens(train_jsonl, max_length), f"{train_jsonl} (approximate tokens)"
    if config.data.path and Path(config.data.path).is_file():
        raw = count_raw_tokens(config.data.path, max_length)
        return int(raw * config.split.train), f"{config.data.path} x split.train {config.split.train:g} (approximate)"
    return 0, "no data file (data.path unset or missing): training time not estimated"


def grpo_generation(train, train_jsonl: str | Path | None) -> Generation | None:
    """GRPO's sampling for the estimate (None for other objectives); prompts counted from train.jsonl when it exists."""
    grpo = train.grpo_rewards
    if grpo is None:
        return None
    prompts = None
    if train_jsonl and Path(train_jsonl).is_file():
        with open(train_jsonl, "rb") as lines:
            prompts = sum(1 for line in lines if line.strip())
    return Generation(grpo.num_generations, grpo.max_completion_length, grpo.beta, train.effective_batch_size, prompts)


def estimate_for_config(
    config: PipelineConfig,
    n_train_tokens: int | None = None,
    train_jsonl: str | Path | None = None,
    gpu_memory_gib: float | None = None,
    device: str | None = None,
    num_gpus: int | None = None,
    host_memory: float | None = None,
) -> ResourceEstimate:
    """Estimate memory, time and disk for a pipeline config on the detected (or given) device.

    num_gpus (default: train.num_gpus, else the visible GPUs) with train.distributed: under fsdp (or auto, when DDP
    does not fit one card) the memory figures are per GPU with the model sharded over them. With a card size, also the
    longest sequence that trains at batch 1 for loraflow and the plain stack (host_memory GiB, default this machine's,
    bounds the offloaded layer inputs).
    """
    if device is None:
        device, detected = detect_device()
        gpu_memory_gib = gpu_memory_gib if gpu_memory_gib is not None else detected
    name = config.model.name_or_path
    if config.model.gguf_file and Path(name).is_dir() and not (Path(name) / "config.json").is_file():
        # GGUF-only folders: the converted copy in the cache holds config.json once the model was resolved.
        name = str(Path(config.model.cache_dir or ".loraflow/models") / f"{Path(name).name}-{Path(config.model.gguf_file).stem}")
    model_config = load_model_config(name)
    records = raw_record_tokens(config.data.path) if config.data.path and Path(config.data.path).is_file() else None
    max_length = planned_max_length(config, model_config, records)
    source = "given"
    if n_train_tokens is None:
        n_train_tokens, source = train_tokens_for(config, max_length, train_jsonl)
    train, schedule_note = resolve_schedule(config.train, int(len(records or []) * config.split.train),
                                            declared_classes(config.task_card.fields))
    epochs = train.epochs
    if train.max_steps > 0:
        # max_steps caps the run: that many optimizer steps of effective_batch x max_length tokens at most.
        epochs = min(epochs, train.max_steps * train.effective_batch_size * max_length / max(n_train_tokens, 1))

    gpus = num_gpus if num_gpus is not None else (train.num_gpus or max(1, detect_gpu_count()))
    lengths = record_token_lengths(train_jsonl, max_length) if train_jsonl and Path(train_jsonl).is_file() else None
    pack, pack_note = packed_plan(train, device, max_length, lengths, gpus)

    def estimate_with(unchecked_layers: int, distributed: str = "ddp", offload: bool = False) -> ResourceEstimate:
        return estimate_resources(
            model_config, train.method, config.lora.r, max_length, train.micro_batch_size,
            train.gradient_checkpointing, n_train_tokens, epochs, gpu_memory_gib, target_modules=config.lora.target_modules,
            device=device, merge=config.deploy.merge, quantize=list(config.deploy.quantize), optimizer=train.optimizer,
            qlora_fp32=train.qlora_fp32, unchecked_layers=unchecked_layers, lora_dropout=config.lora.dropout,
            offload_activations=offload, num_gpus=gpus, distributed=distributed,
            objective=train.objective, packed_tokens=pack.row_tokens if pack else None,
            generation=grpo_generation(train, train_jsonl),
        )

    # the auto settings are sized for the method the estimate picks (auto: bf16 LoRA where it fits), as training does
    method = estimate_with(0).method
    sized = train.model_copy(update={"method": method})
    offload = train.offload_activations
    if offload == "auto":
        offload = device != "cpu" and auto_offload_activations(sized, config.lora, model_config, max_length, gpu_memory_gib)
    offload = bool(offload and train.gradient_checkpointing)
    unchecked = train.unchecked_layers
    if unchecked == "auto":
        unchecked = 0
        if device != "cpu" and train.gradient_checkpointing and not offload:  # the count always fits the card
            unchecked = auto_unchecked_layers(sized, config.lora, model_config, max_length, gpu_memory_gib)
    estimate = estimate_with(unchecked, offload=offload)
    distributed = pick_distributed(train.distributed, estimate.fits, gpus)
    if distributed == "fsdp" and gpus > 1:
        offload = False  # not under FSDP (tasks/training/distributed.py)
        estimate = estimate_with(unchecked, "fsdp")
    notes = [*estimate.notes, f"device {device}", f"train tokens per epoch: {n_train_tokens:,} from {source}"]
    if config.train.schedule == "auto" and records is not None:
        notes.append(schedule_note + " (from the raw record count x split.train; resolved again on the split)")
    if config.model.max_length == "auto":
        notes.append(f"model.max_length auto -> {max_length} (approximate, from the raw records; the data flow measures it "
                     "with the tokenizer)")
    if pack_note:
        notes.append(pack_note)
    if gpus > 1:
        notes.append(f"train.distributed {train.distributed} -> {distributed} on {gpus} GPUs")
    if train.unchecked_layers == "auto" and train.gradient_checkpointing:
        notes.append(f"train.unchecked_layers auto -> {unchecked}")
    if offload:
        host = offloaded_host_bytes(model_config, max_length * train.micro_batch_size,
                                    residual_bytes(method, train.qlora_fp32), unchecked) / 2**30
        notes.append(f"train.offload_activations {train.offload_activations} -> on: the checkpointed layer inputs take "
                     f"~{host:.1f} GiB of pinned host memory")
    limits = []
    if gpu_memory_gib and method in ("lora", "qlora"):
        host_gib = host_memory if host_memory is not None else host_memory_gib()
        limits = context_limits(train, config.lora, method, model_config, gpu_memory_gib, host_gib)
    if device == "cpu":
        notes.append("on the CPU training runs in fp32 in host memory: the memory figures are for bf16 training on a GPU")
    return dataclasses.replace(estimate, notes=notes, context_limits=limits)
