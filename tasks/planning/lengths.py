"""Sequence length from the data: `model.max_length: auto` and what each length choice costs.

A length limit is a property of the run, not of the data: a valid record longer than the limit is the limit's fault.
So `auto` takes the smallest length that keeps `KEEP_SHARE` of the records (their token counts as the model sees them,
chat template and system prompt included), rounded up to a multiple of `ROUND_TO`, capped by the model's own context
length. An explicit limit that cuts records names itself, the share it cuts and the length that would keep them.
"""
import math
import re
from collections.abc import Sequence

from loraflow.schemas.results import TokenLengths

KEEP_SHARE = 0.995  # ~1 record in 200 may be an outlier (a pasted log, a whole e-mail thread) not worth its memory
ROUND_TO = 32  # lengths in multiples of 32 tokens: kernel-friendly shapes, and a little room for tokenizer drift
PERCENTILES = (50, 90, 95, 99, 99.5, 100)
DEFAULT_MODEL_LIMIT = 2048  # a model config that states no context length
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def approx_tokens(text: str) -> int:
    """Rough token count without a tokenizer: ~1.5 tokens per CJK character, ~4 characters per token otherwise."""
    cjk = len(_CJK.findall(text))
    return int(cjk * 1.5 + (len(text) - cjk) / 4)


def model_context_limit(model_config: dict) -> int:
    """The longest sequence the model was built for (max_position_embeddings or its aliases)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = model_config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MODEL_LIMIT


def length_percentiles(lengths: Sequence[int]) -> dict[str, int]:
    """Token-length percentiles (nearest rank, so every value is a real record's length): p50 ... p99.5 and max."""
    ordered = sorted(lengths)
    if not ordered:
        return {}
    return {_name(p): ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))] for p in PERCENTILES}


def _name(p: float) -> str:
    return "max" if p == 100 else f"p{p:g}"


def round_up(length: int, multiple: int = ROUND_TO) -> int:
    """length rounded up to a multiple of `multiple`."""
    return max(multiple, math.ceil(length / multiple) * multiple)


def choose_max_length(lengths: Sequence[int], model_limit: int, keep: float = KEEP_SHARE) -> int:
    """The smallest multiple of ROUND_TO that keeps `keep` of the records, capped by the model's context length.

    With no lengths (no data yet) the model's limit is returned, capped at DEFAULT_MODEL_LIMIT.
    """
    ordered = sorted(lengths)
    if not ordered:
        return min(model_limit, DEFAULT_MODEL_LIMIT)
    needed = ordered[min(len(ordered) - 1, max(0, math.ceil(keep * len(ordered)) - 1))]
    return min(model_limit, round_up(needed))


def share_above(lengths: Sequence[int], limit: int) -> tuple[int, float]:
    """How many records are longer than `limit` tokens, and their share."""
    n = sum(1 for length in lengths if length > limit)
    return n, n / len(lengths) if lengths else 0.0


def length_choices(lengths: Sequence[int], model_limit: int, chosen: int) -> list[int]:
    """The lengths worth comparing in the report: the chosen one and those keeping p95, p99 and every record."""
    points = length_percentiles(lengths)
    candidates = {chosen, *(min(model_limit, round_up(points[k])) for k in ("p95", "p99", "max") if k in points)}
    return sorted(candidates)


def length_hint(plan: TokenLengths | None) -> str:
    """One sentence for a user whose records exceed the length limit: the limit is the cause, and what would keep them."""
    if not plan or not plan.above_limit:
        return ""
    points = ", ".join(f"{k} {v}" for k, v in plan.percentiles.items())
    keeper = max(plan.choices, key=lambda c: c.length)
    memory = f" (estimated peak {keeper.peak_gpu_gib:g} GiB on a GPU)" if keeper.peak_gpu_gib else ""
    if plan.validation_limit != plan.max_length:
        limit, fix = f"data.max_tokens={plan.validation_limit}", f"raise data.max_tokens to {keeper.length}"
    elif plan.source == "auto":
        limit = f"the {plan.max_length} tokens model.max_length: auto chose (it keeps {plan.keep_share:.1%})"
        fix = f"set model.max_length: {keeper.length} if they matter"
    else:
        limit, fix = f"model.max_length={plan.max_length} tokens", f"set model.max_length: auto, or {keeper.length}"
    return (f"{plan.above_limit} of {plan.n_measured} measured records ({plan.above_share:.1%}) are longer than "
            f"{limit} (token lengths with the chat template: {points}); the records are valid, the limit cuts them: "
            f"{fix} to keep every one{memory}.")
