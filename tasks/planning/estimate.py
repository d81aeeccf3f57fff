"""Resource estimate before training: GPU memory by method, training time from a throughput table, disk."""
from dataclasses import asdict, dataclass, field

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.planning.context_limit import ContextLimit
from loraflow.tasks.planning.estimate_fsdp import fsdp_memory_parts
from loraflow.tasks.planning.estimate_objective import (Generation, compute_factor, generation_parts, generation_seconds,
                                                        objective_note, phases_for, reference_bytes, samples_per_example)
from loraflow.tasks.planning.estimate_disk import disk_breakdown
from loraflow.tasks.planning.estimate_speed import THROUGHPUT_TABLE, Method, device_family, tokens_per_second
from loraflow.tasks.planning.estimate_shapes import (GIB, NF4_BYTES, NF4_CONST_BYTES, OPTIMIZER_BYTES, ModelShape,
                                                      load_model_config, lora_params, residual_bytes, shape_from_config)

# A compiled decoder layer saves ~2/3 of the eager layer's tensors: 1.47 GiB per unchecked 7B layer at 8192 tokens
# (qlora_fp32 none, H100, benchmarks/results/train_bench_h100_2026-11-27_run3_unchecked.json) vs 2.21 GiB eager.
COMPILED_LAYER_FRACTION = 0.665
# train.optimizer names -> the estimate's optimizer kinds (auto is fused fp32 AdamW on CUDA)
OPTIMIZER_KIND = {"auto": "adamw", "adamw_torch_fused": "adamw", "adamw_torch": "adamw",
                  "paged_adamw_8bit": "paged_adamw_8bit", "adamw_8bit": "paged_adamw_8bit"}
# Runtime buffers the allocator counts (cuBLAS workspace, rotary caches): fitted on the H100 runs.
RUNTIME_BUFFER_BYTES = 64 * 2**20
# Peak per token of logits work: bf16 logits + fp32 upcast + fp32 log-softmax + fp32 gradient (~14.5 B per vocab entry,
# fitted so that the bf16-LoRA and QLoRA H100 peaks in benchmarks/results/qlora_baseline_h100.json agree within 3%).
LOGITS_BYTES_PER_VOCAB = 14.5
# trl's SFTTrainer never builds the full logits: its fused LM head scores [4096 tokens x 32768 vocab] tiles
# (trl/kernels/chunked_logprob.py) and keeps an fp32 gradient of the head's input.
FUSED_HEAD_TILE = (4096, 32768)
# What nvidia-smi sees beyond torch's peak allocation: allocator fragmentation (reserved/allocated was 1.15-1.22 on the
# H100 runs) and the CUDA context itself.
ALLOCATOR_FACTOR = 1.2
CUDA_CONTEXT_BYTES = 0.5 * GIB
FIT_MARGIN = 0.9  # use at most 90% of the card, so a longer batch or eval does not tip it over
# LoRA dropout > 0 keeps, for every adapted linear layer, a bf16 dropout copy of its input and a 1-byte mask.
DROPOUT_BYTES_PER_INPUT = 3
# train.offload_activations: layer inputs on the card at once (the one being copied out or back, the one in use).
OFFLOADED_INPUTS_ON_CARD = 2

@dataclass(frozen=True)
class Recommendation:
    """Settings that fit the card, fastest first."""

    method: Method
    micro_batch: int
    gradient_checkpointing: bool
    peak_gpu_memory_gib: float
    reason: str


@dataclass(frozen=True)
class ResourceEstimate:
    """What a training run needs: GPU memory (GiB), hours and disk (GiB), with the parts they come from."""

    method: str
    requested_method: str
    peak_gpu_memory_gib: float  # peak torch allocation, comparable with torch.cuda.max_memory_allocated
    required_gpu_memory_gib: float  # with allocator fragmentation and CUDA context: what the card must hold
    gpu_memory_gib: float | None
    fits: bool
    train_hours: float
    tokens_per_s: float
    disk_gib: float
    total_params: int
    trainable_params: int
    memory_gib: dict[str, float] = field(default_factory=dict)
    disk_parts_gib: dict[str, float] = field(default_factory=dict)
    recommendation: Recommendation | None = None
    notes: list[str] = field(default_factory=list)
    context_limits: list[ContextLimit] = field(default_factory=list)  # longest batch-1 sequence: loraflow, plain stack

    def to_dict(self) -> dict:
        """Plain JSON-able dict; the four summary keys first."""
        data = asdict(self)
        head = {key: data.pop(key) for key in ("peak_gpu_memory_gib", "train_hours", "disk_gib", "method")}
        return head | data


def memory_breakdown(
    shape: ModelShape, method: Method, trainable: int, seq_len: int, micro_batch: int, grad_checkpointing: bool,
    optimizer: str, qlora_fp32: str = "all", fused_lm_head: bool = True, unchecked_layers: int = 0,
    lora_dropout: float = 0.0, offload_activations: bool = False,
) -> dict[str, float]:
    """Peak GPU bytes by part (weights, adapter, gradients, optimizer, activations, buffers), in GiB."""
    quantized_linear = shape.layer_linear_params
    other = shape.embedding_params + shape.norm_params
    head_copy = 0.0
    if method == "qlora":
        # qlora_fp32 "all": peft's prepare_model_for_kbit_training casts the non-quantised weights to fp32 and autocast
        # keeps a bf16 copy of the output head for the backward pass; "norms": only the norms stay fp32, which still
        # makes every projection's output and so the residual stream fp32; "none": all bf16.
        upcast_all = qlora_fp32 == "all"
        weights = quantized_linear * (NF4_BYTES + NF4_CONST_BYTES) + other * (4 if upcast_all else 2)
        head_copy = shape.vocab_size * shape.hidden_size * 2 if upcast_all else 0.0
    elif method == "lora":
        weights = shape.total_params * 2.0
    else:
        # fp32 master weights plus the bf16 copies autocast makes of them.
        weights = shape.total_params * 6.0
    adapter = trainable * 4.0 if method != "full" else 0.0  # peft keeps adapters in fp32
    gradients = trainable * 4.0
    try:
        optimizer_state = trainable * OPTIMIZER_BYTES[optimizer]
    except KeyError:
        raise LoraflowError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZER_BYTES)}") from None
    tokens = seq_len * micro_batch
    # Full fine-tuning has no adapters; its (unmeasured) layer estimate keeps the fitted dropout part as a margin.
    dropout_copies = method == "full" or lora_dropout > 0
    activations = activation_bytes(shape, tokens, grad_checkpointing, residual_bytes(method, qlora_fp32), fused_lm_head,
                                   unchecked_layers, dropout_copies, offload_activations) + head_copy
    parts = {
        "weights": weights, "adapter": adapter, "gradients": gradients, "optimizer": optimizer_state,
        "activations": activations, "runtime_buffers": float(RUNTIME_BUFFER_BYTES),
    }
    return {name: value / GIB for name, value in parts.items()}


def activation_bytes(shape: ModelShape, tokens: int, grad_checkpointing: bool, residual_bytes: int,
                     fused_lm_head: bool = True, unchecked_layers: int = 0, dropout_copies: bool = True,
                     offload_activations: bool = False) -> float:
    """Activation bytes kept at the peak for one micro-batch (SDPA attention, so linear in sequence length).

    unchecked_layers (train.unchecked_layers): layers that keep their activations under checkpointing; the first adds
    nothing (one layer's activations are live during its recomputation anyway), each further one a compiled layer's.
    offload_activations: the checkpointed layers' inputs wait in host memory (estimate_context.offloaded_host_bytes).
    """
    h, i = shape.hidden_size, shape.intermediate_size * shape.num_experts
    # One decoder layer's saved tensors: norms, q/k/v/o, LoRA dropout copies and masks, the MLP's four I-wide tensors.
    # Fitted to the no-checkpointing QLoRA run (43.6 GiB at 2048x2); fp32 residuals add 8h.
    layer = tokens * ((40 + 2 * residual_bytes) * h + 10 * i)
    if not dropout_copies:  # LoRA dropout 0: peft's Identity keeps no copy of the layer inputs
        layer -= tokens * DROPOUT_BYTES_PER_INPUT * sum(fan_in for _, fan_in, _ in shape.layer_linears())
    if fused_lm_head:
        tile_tokens, tile_vocab = FUSED_HEAD_TILE
        head = min(tokens, tile_tokens) * min(shape.vocab_size, tile_vocab) * 6 + tokens * (4 * h + 20)
    else:
        head = tokens * LOGITS_BYTES_PER_VOCAB * shape.vocab_size
    if grad_checkpointing:
        # Every layer keeps only its input; the head's phase and one recomputed layer do not overlap.
        extra = max(0, min(unchecked_layers, shape.num_layers) - 1) * layer * COMPILED_LAYER_FRACTION
        inputs = min(shape.num_layers, unchecked_layers + OFFLOADED_INPUTS_ON_CARD) if offload_activations else shape.num_layers
        return tokens * inputs * h * residual_bytes + max(head, layer) + extra
    return shape.num_layers * layer + head


def estimate_resources(
    model_config_path_or_dict: str | dict,
    method: str,
    lora_r: int,
    seq_len: int,
    micro_batch: int,
    grad_checkpointing: bool,
    n_train_tokens: int,
    epochs: float,
    gpu_memory_gib: float | None,
    throughput_table: dict | None = None,
    *,
    target_modules: list[str] | str = "all-linear",
    optimizer: str | None = None,
    device: str = "H100",
    checkpoints_kept: int = 2,
    merge: bool = True,
    quantize: list[str] | tuple[str, ...] = (),
    qlora_fp32: str = "all",
    fused_lm_head: bool = True,
    unchecked_layers: int = 0,
    lora_dropout: float = 0.0,
    offload_activations: bool = False,
    num_gpus: int = 1,
    distributed: str = "ddp",
    objective: str = "sft",
    packed_tokens: int | None = None,
    generation: Generation | None = None,
) -> ResourceEstimate:
    """Estimate peak GPU memory, training hours and disk; `auto` picks bf16 LoRA when it fits with margin, else QLoRA.

    fused_lm_head=True models trl's SFTTrainer (loraflow's path); False the plain stack (benchmarks/baseline_stack.py;
    its H100 run: benchmarks/results/qlora_baseline_h100.json). offload_activations: layer inputs in host memory.
    distributed="fsdp" with num_gpus > 1: the memory figures are per GPU under FSDP full sharding
    (tasks/planning/estimate_fsdp.py); DDP's per-GPU memory is the single GPU's.
    objective (train.objective): pairs are two sequences per example, DPO adds its reference (tasks/planning/estimate_objective.py);
    n_train_tokens counts the prompt and the chosen answer once, as for sft.
    packed_tokens (train.packing, tasks/planning/estimate_packing.py): tokens of a packed micro-batch, one padding-free
    row; the speed is that row's, the peak memory stays the padded micro-batch's (an upper bound). generation (GRPO
    objectives): the sampling that sizes the generation memory (KV cache of the generation batch) and decode time.
    """
    config = model_config_path_or_dict
    shape = shape_from_config(config if isinstance(config, dict) else load_model_config(config))
    if method not in ("lora", "qlora", "full", "auto"):
        raise LoraflowError(f"train.method={method!r} is not one of lora, qlora, full, auto; fix train.method")

    phases = phases_for(objective, generation)

    def peak(candidate: str, batch: int, checkpointing: bool) -> tuple[dict[str, float], float, int]:
        """The peak over the objective's phases (sft_then_dpo: its DPO phase, with twice the sequences)."""
        trainable = shape.total_params if candidate == "full" else lora_params(shape, lora_r, target_modules)
        opt = OPTIMIZER_KIND.get(optimizer or "auto", optimizer)
        highest: dict[str, float] = {}
        for phase in phases:
            parts = memory_breakdown(shape, candidate, trainable, seq_len, batch * phase.sequences, checkpointing, opt,
                                     qlora_fp32, fused_lm_head and phase.fused_lm_head,
                                     unchecked_layers if checkpointing else 0, lora_dropout,
                                     offload_activations and checkpointing)
            if phase.reference_forward:
                parts["reference"] = reference_bytes(phase, candidate, shape.total_params, trainable) / GIB
            if phase.generates and generation is not None:  # GRPO: generation's peak, when above training's
                sampling = generation_parts(parts, shape, generation, seq_len, GIB)
                parts = sampling if sum(sampling.values()) > sum(parts.values()) else parts
            if sum(parts.values()) > sum(highest.values()):
                highest = parts
        if sharded:
            highest = fsdp_memory_parts(highest, shape, candidate, num_gpus)
        return highest, sum(highest.values()), trainable

    def fits(allocated_gib: float) -> bool:
        return gpu_memory_gib is None or required_gib(allocated_gib) <= gpu_memory_gib * FIT_MARGIN

    sharded = distributed == "fsdp" and num_gpus > 1
    notes = [f"fsdp over {num_gpus} GPUs: memory per GPU"] if sharded else []
    chosen = method
    if method == "auto":
        chosen = "lora" if fits(peak("lora", micro_batch, grad_checkpointing)[1]) else "qlora"
        why = "no GPU limit" if gpu_memory_gib is None else "bf16 LoRA fits" if chosen == "lora" else "bf16 LoRA does not fit"
        notes.append(f"method auto -> {chosen} ({why})")
    parts, allocated, trainable = peak(chosen, micro_batch, grad_checkpointing)
    recommendation = None
    if not fits(allocated):
        recommendation = recommend(
            shape, "lora" if method == "auto" else chosen, micro_batch, grad_checkpointing, seq_len, device, throughput_table,
            lambda m, b, c: peak(m, b, c)[1], fits,
        )
        notes.append(
            f"{chosen} at micro-batch {micro_batch} needs {required_gib(allocated):.1f} GiB, more than "
            f"{FIT_MARGIN:.0%} of the {gpu_memory_gib:.1f} GiB card"
        )
    table = throughput_table or THROUGHPUT_TABLE
    if device not in table and device_family(device) not in table:
        notes.append(f"no measured throughput for {device}; training time uses the H100 numbers")
    opt = OPTIMIZER_KIND.get(optimizer or "auto", optimizer)
    # Each phase goes over the data once per epoch; a pair's two sequences both train, DPO's reference forward slows it.
    seconds, speed, decoding = 0.0, 0.0, 0.0
    for phase in phases:
        packed = packed_tokens if packed_tokens and phase.sequences == 1 else None
        raw = tokens_per_second(shape, chosen, packed or seq_len, 1 if packed else micro_batch * phase.sequences,
                                grad_checkpointing, device, throughput_table)
        speed = raw / compute_factor(phase, grad_checkpointing)  # reported: the last phase's trained tokens/s
        seconds += n_train_tokens * samples_per_example(phase, generation) * epochs / speed
        if phase.generates and generation is not None:
            decoding = generation_seconds(shape, chosen, generation, device, n_train_tokens, seq_len, epochs)
            seconds += decoding
    disk = disk_breakdown(shape, chosen, trainable, opt, checkpoints_kept, merge, list(quantize))
    if len(phases) > 1:  # sft_then_dpo keeps the supervised phase's checkpoints and adapter in sft_phase/
        disk["sft_phase"] = disk["checkpoints"] + disk["final"]
    note = objective_note(objective, grad_checkpointing, separate_reference_gib(shape, chosen), chosen, generation,
                          decoding / 3600)
    if note:
        notes.append(note)
    return ResourceEstimate(
        method=chosen,
        requested_method=method,
        peak_gpu_memory_gib=round(allocated, 3),
        required_gpu_memory_gib=round(required_gib(allocated), 3),
        gpu_memory_gib=gpu_memory_gib,
        fits=fits(allocated),
        train_hours=round(seconds / 3600, 4),
        tokens_per_s=round(speed, 1),
        disk_gib=round(sum(disk.values()), 3),
        total_params=shape.total_params,
        trainable_params=trainable,
        memory_gib={k: round(v, 3) for k, v in parts.items()},
        disk_parts_gib={k: round(v, 3) for k, v in disk.items()},
        recommendation=recommendation,
        notes=notes,
    )


def separate_reference_gib(shape: ModelShape, method: str) -> float:
    """GiB a second, frozen reference model would take (plain trl DPO with ref_model=...): the method's base weights."""
    if method == "qlora":
        return (shape.layer_linear_params * (NF4_BYTES + NF4_CONST_BYTES) + (shape.embedding_params + shape.norm_params) * 2) / GIB
    return shape.total_params * 2.0 / GIB


def required_gib(allocated_gib: float) -> float:
    """Card memory needed for a peak allocation: allocator fragmentation plus the CUDA context."""
    return allocated_gib * ALLOCATOR_FACTOR + CUDA_CONTEXT_BYTES / GIB


def recommend(shape, method, micro_batch, grad_checkpointing, seq_len, device, throughput_table, peak_of, fits):
    """The fastest (method, micro-batch, checkpointing) that fits; None when even QLoRA at batch 1 does not."""
    methods = {"full": ["full", "lora", "qlora"], "lora": ["lora", "qlora"], "qlora": ["qlora"]}[method]
    candidates = []
    for candidate in methods:
        batch = micro_batch
        while batch >= 1:
            for checkpointing in sorted({grad_checkpointing, True}):
                speed = tokens_per_second(shape, candidate, seq_len, batch, checkpointing, device, throughput_table)
                candidates.append((speed, candidate, batch, checkpointing))
            batch //= 2
    for speed, candidate, batch, checkpointing in sorted(candidates, key=lambda c: -c[0]):
        allocated = peak_of(candidate, batch, checkpointing)
        if fits(allocated):
            return Recommendation(
                method=candidate, micro_batch=batch, gradient_checkpointing=checkpointing,
                peak_gpu_memory_gib=round(allocated, 3),
                reason=f"fastest setting that fits: ~{speed:,.0f} tokens/s; raise gradient accumulation to keep the effective batch",
            )
    return None


def require_fit(estimate: ResourceEstimate) -> None:
    """Stop early (LoraflowError) when the configured training cannot fit the detected GPU, naming what would."""
    if estimate.fits:
        return
    card = f"{estimate.gpu_memory_gib:.1f} GiB GPU"
    need = f"{estimate.method} needs about {estimate.required_gpu_memory_gib:.1f} GiB"
    rec = estimate.recommendation
    if rec is None:
        raise LoraflowError(
            f"the model does not fit the {card} even with QLoRA at micro-batch 1 ({need}); "
            "choose a smaller model (model.name_or_path) or train across GPUs with FSDP + QLoRA"
        )
    raise LoraflowError(
        f"training does not fit the {card} ({need}); set train.method={rec.method} "
        f"train.micro_batch_size={rec.micro_batch} train.gradient_checkpointing={str(rec.gradient_checkpointing).lower()}"
    )
