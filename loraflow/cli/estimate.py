"""`loraflow estimate CONFIG [--json]`: GPU memory, training time and disk before training starts."""
import json


def register(subparsers) -> None:
    """Add `estimate`."""
    parser = subparsers.add_parser("estimate", help="Estimate GPU memory, training time and disk for a pipeline config.")
    parser.add_argument("config", help="Pipeline YAML file.")
    parser.add_argument("--json", action="store_true", help="Print JSON (peak_gpu_memory_gib, train_hours, disk_gib, method, ...).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config field, e.g. --set train.micro_batch_size=2 (repeatable).")
    parser.add_argument("--tokens", type=int, help="Training tokens per epoch (default: counted roughly from the data).")
    parser.add_argument("--train-jsonl", help="A split train.jsonl to count tokens from (e.g. RUN/data/train.jsonl).")
    parser.add_argument("--gpu-memory", type=float, metavar="GIB", help="GPU memory to plan for (default: the detected GPU).")
    parser.add_argument("--device", help="Card for the throughput table: H100, H200, A100, cpu (default: detected).")
    parser.add_argument("--host-memory", type=float, metavar="GIB", help="Host memory that offloaded activations may use "
                        "(default: this machine's); bounds the longest trainable sequence.")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs to plan for (default: train.num_gpus, else the "
                        "visible ones); with train.distributed fsdp (or auto, when DDP does not fit) memory is per GPU.")
    parser.set_defaults(handler=run_estimate)


def run_estimate(args) -> int:
    """Print the estimate; exit 0 whether or not it fits (the flow is what stops)."""
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.planning.estimate_config import estimate_for_config

    config = load_config(args.config, args.overrides)
    device = args.device
    gpu = args.gpu_memory
    if device is None and gpu is not None:
        from loraflow.tasks.common.device import detect_device

        device = detect_device()[0]
    estimate = estimate_for_config(config, n_train_tokens=args.tokens, train_jsonl=args.train_jsonl,
                                   gpu_memory_gib=gpu, device=device, num_gpus=args.gpus, host_memory=args.host_memory)
    if args.json:
        print(json.dumps(estimate.to_dict(), ensure_ascii=False))
        return 0
    print(render_estimate(estimate))
    return 0


def render_estimate(estimate) -> str:
    """Human-readable summary of a ResourceEstimate."""
    card = f"{estimate.gpu_memory_gib:.1f} GiB GPU" if estimate.gpu_memory_gib else "no GPU limit"
    lines = [
        f"method: {estimate.method} (requested {estimate.requested_method}); "
        f"{estimate.trainable_params:,} trainable of {estimate.total_params:,} parameters",
        f"peak GPU memory: {estimate.peak_gpu_memory_gib:.2f} GiB allocated, "
        f"~{estimate.required_gpu_memory_gib:.2f} GiB on the card ({card}: {'fits' if estimate.fits else 'DOES NOT FIT'})",
        "  " + ", ".join(f"{k} {v:.2f}" for k, v in estimate.memory_gib.items()),
        f"training time: {estimate.train_hours:.2f} h at ~{estimate.tokens_per_s:,.0f} tokens/s",
        f"disk: {estimate.disk_gib:.2f} GiB",
        "  " + ", ".join(f"{k} {v:.2f}" for k, v in estimate.disk_parts_gib.items()),
    ]
    rec = estimate.recommendation
    if rec:
        lines.append(
            f"recommended: --set train.method={rec.method} --set train.micro_batch_size={rec.micro_batch} "
            f"--set train.gradient_checkpointing={str(rec.gradient_checkpointing).lower()} "
            f"({rec.peak_gpu_memory_gib:.2f} GiB; {rec.reason})"
        )
    elif not estimate.fits:
        lines.append("nothing fits this GPU: use a smaller model or FSDP + QLoRA across several GPUs")
    lines += [context_line(limit) for limit in estimate.context_limits]
    lines += [f"note: {note}" for note in estimate.notes]
    return "\n".join(lines)


def context_line(limit) -> str:
    """One stack's longest trainable sequence at batch 1 (a ContextLimit) as a line."""
    who = ("loraflow (" + limit.settings["method"] + (", offloaded checkpointing" if limit.settings["offload_activations"]
                                                     else "") + ", fused LM head)") if limit.stack == "loraflow" else \
        "plain QLoRA stack (fp32 upcast, full logits)"
    host = f", {limit.host_memory_gib:.0f} GiB pinned host memory" if limit.host_memory_gib else ""
    return (f"longest sequence at batch 1 with gradient checkpointing, {who}: ~{limit.tokens:,} tokens "
            f"({limit.required_gpu_memory_gib:.1f} GiB of the {limit.gpu_memory_gib:.1f} GiB card{host}; "
            f"limited by {limit.limited_by})")
