"""Generate one batch token by token: left padding, KV cache, per-request sampling, max_tokens and stop strings."""
import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loraflow.services.serving.loading import ModelBundle
from loraflow.services.serving.requests import Delta, Event, Failed, Finished, GenerationRequest, Started
from loraflow.tasks.common.token_budget import char_limit


@dataclass
class Slot:
    """One request's state inside a batch."""

    request: GenerationRequest
    on_event: Callable[[Event], None]
    cancelled: threading.Event
    prompt_ids: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    max_tokens: int = 0
    emitted: int = 0  # characters of the answer already sent
    done: bool = False
    generator: Any = None
    allowed: Any = None  # prefix_allowed_tokens_fn keeping the answer inside its JSON schema; None: free text

    def emit(self, event: Event) -> None:
        """Send an event; a closed client loop cancels the request instead of failing the batch."""
        if isinstance(event, (Finished, Failed)):
            self.done = True
        try:
            self.on_event(event)
        except RuntimeError:
            self.cancelled.set()
            self.done = True


def find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index where the earliest stop string starts in text, or None."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """Characters at the end of text to hold back because they may begin a stop string."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest


def prepare(bundle: ModelBundle, slot: Slot, default_max_tokens: int) -> bool:
    """Tokenize a request's chat prompt and fix its token budget; False (with Failed sent) when it cannot run."""
    tokenizer = bundle.tokenizer
    try:
        prompt = tokenizer.apply_chat_template(slot.request.messages, tokenize=False, add_generation_prompt=True)
    except Exception as error:  # jinja raises for roles or orders a template does not allow
        slot.emit(Failed(f"the model's chat template rejected the messages: {error}", 400))
        return False
    if len(prompt) > char_limit(tokenizer, bundle.max_context):  # too long by its length: not tokenized at all
        slot.emit(Failed(f"the prompt has {len(prompt)} characters, more than the model's context of {bundle.max_context} "
                         "tokens can hold: shorten the messages", 400))
        return False
    slot.prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    room = bundle.max_context - len(slot.prompt_ids)
    if room <= 0:
        slot.emit(Failed(f"the prompt has {len(slot.prompt_ids)} tokens but the model's context is {bundle.max_context}: shorten the messages", 400))
        return False
    if slot.request.max_tokens and slot.request.max_tokens > room:  # refused as vLLM does; the server's default is capped
        slot.emit(Failed(f"max_tokens {slot.request.max_tokens} does not fit: the prompt has {len(slot.prompt_ids)} tokens "
                         f"and the model's context is {bundle.max_context}, so at most {room} tokens can follow; lower max_tokens", 400))
        return False
    slot.max_tokens = min(slot.request.max_tokens or default_max_tokens, room)
    schema = bundle.answer_schema if slot.request.schema == "model" else slot.request.schema
    if schema:
        from loraflow.tasks.evaluation.constrained import allowed_tokens_fn

        try:
            slot.allowed = allowed_tokens_fn(tokenizer, schema, sorted(bundle.eos_ids))
        except Exception as error:  # the schema parser rejects what it cannot enforce
            slot.emit(Failed(f"response_format: cannot decode under that JSON schema: {error}", 400))
            return False
    if slot.request.seed is not None:
        import torch

        slot.generator = torch.Generator().manual_seed(slot.request.seed)
    slot.emit(Started(len(slot.prompt_ids), bundle.version))
    return True


def run_batch(bundle: ModelBundle, slots: list[Slot], default_max_tokens: int,
              admit: Callable[[int], list[Slot]] | None = None) -> tuple[int, int]:
    """Generate every slot's answer together, sending Delta events as text grows and Finished at the end.

    admit(rows_now) returns waiting requests that may join the running batch at a step boundary
    (continuous batching); it is only used where the model's KV cache is a plain DynamicCache.
    Returns (decode steps, rows summed over steps).
    """
    import torch

    live = [s for s in slots if prepare(bundle, s, default_max_tokens)]
    if not live:
        return 0, 0
    with torch.inference_mode():
        return _decode(bundle, live, default_max_tokens, admit)


@functools.cache
def _cache_kwarg(model_type: type) -> str:
    # transformers renamed past_key_values to cache (5.2x); the GPU image may run an older 5.x.
    params = inspect.signature(model_type.forward).parameters
    return "past_key_values" if "past_key_values" in params else "cache"


def _forward(model, input_ids, attention_mask, position_ids, cache):
    name = _cache_kwarg(type(model))
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, logits_to_keep=1, **{name: cache})
    new_cache = out.get("cache")
    return out.logits[:, -1, :], new_cache if new_cache is not None else out.get("past_key_values")


def _prefill(bundle: ModelBundle, rows: list[Slot]):
    """Run the left-padded prompts; returns last logits, the KV cache, the attention mask and each row's last position."""
    import torch

    width = max(len(s.prompt_ids) for s in rows)
    input_ids = torch.full((len(rows), width), bundle.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, slot in enumerate(rows):
        n = len(slot.prompt_ids)
        input_ids[i, width - n:] = torch.tensor(slot.prompt_ids)
        mask[i, width - n:] = 1
    input_ids, mask = input_ids.to(bundle.device), mask.to(bundle.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits, cache = _forward(bundle.model, input_ids, mask, positions, None)
    return logits, cache, mask, positions[:, -1]


def _plain_layers(cache) -> list | None:
    """The cache's layers when every one is a plain DynamicLayer (rows can be merged and columns trimmed), else None."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return None
    layers = getattr(cache, "layers", None)
    return layers if layers and all(type(layer) is DynamicLayer for layer in layers) else None


def _left_pad(tensor, width: int, dim: int):
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge(cache, mask, new_cache, new_mask):
    """Append new rows to the running batch: both KV caches and masks left-padded to one width."""
    import torch

    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new_layer in zip(cache.layers, new_cache.layers):
        layer.keys = torch.cat([_left_pad(layer.keys, width, 2), _left_pad(new_layer.keys, width, 2)])
        layer.values = torch.cat([_left_pad(layer.values, width, 2), _left_pad(new_layer.values, width, 2)])
    return torch.cat([_left_pad(mask, width, 1), _left_pad(new_mask, width, 1)])


def _trim(cache, mask):
    """Drop leading columns no row attends to (left by rows that finished), so a long-lived batch stays short."""
    first = int(mask.any(0).long().argmax())
    if first > 0:
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        mask = mask[:, first:]
    return mask


def _step_rows(bundle: ModelBundle, rows: list[Slot], logits) -> tuple[list[int], list[int]]:
    """Sample each row's next token and advance it; the indices of the rows that go on, and the tokens."""
    tokens = _sample(logits, rows)
    return [i for i, (slot, token) in enumerate(zip(rows, tokens)) if _advance(bundle, slot, token)], tokens


def _decode(bundle: ModelBundle, rows: list[Slot], default_max_tokens: int, admit) -> tuple[int, int]:
    import torch

    device = bundle.device
    logits, cache, mask, last_position = _prefill(bundle, rows)
    mergeable = admit is not None and _plain_layers(cache) is not None
    steps = row_steps = 0
    while True:
        keep, tokens = _step_rows(bundle, rows, logits)
        if len(keep) < len(rows):
            # Drop finished rows from the batch so they cost nothing for the rest of it.
            index = torch.tensor(keep, device=device, dtype=torch.long)
            cache.batch_select_indices(index)
            mask, last_position = mask[index], last_position[index]
            rows, tokens = [rows[i] for i in keep], [tokens[i] for i in keep]
            if mergeable and rows:
                mask = _trim(cache, mask)
        newcomers = [s for s in admit(len(rows)) if prepare(bundle, s, default_max_tokens)] if mergeable else []
        if newcomers:
            new_logits, new_cache, new_mask, new_last = _prefill(bundle, newcomers)
            new_keep, new_tokens = _step_rows(bundle, newcomers, new_logits)
            if new_keep:
                index = torch.tensor(new_keep, device=device, dtype=torch.long)
                new_cache.batch_select_indices(index)
                if rows:
                    mask = _merge(cache, mask, new_cache, new_mask[index])
                    last_position = torch.cat([last_position, new_last[index]])
                else:
                    cache, mask, last_position = new_cache, new_mask[index], new_last[index]
                rows += [newcomers[i] for i in new_keep]
                tokens += [new_tokens[i] for i in new_keep]
        if not rows:
            return steps, row_steps
        steps, row_steps = steps + 1, row_steps + len(rows)
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        last_position = last_position + 1
        step = torch.tensor(tokens, dtype=torch.long, device=device)[:, None]
        logits, cache = _forward(bundle.model, step, mask, last_position[:, None], cache)


def _sample(logits, rows: list[Slot]) -> list[int]:
    import torch

    logits = logits.float()
    for i, slot in enumerate(rows):
        if slot.allowed is not None:  # outside the answer's JSON schema nothing may be chosen
            keep = torch.tensor(slot.allowed(0, torch.tensor(slot.prompt_ids + slot.generated)), dtype=torch.long,
                                device=logits.device)
            masked = torch.full_like(logits[i], float("-inf"))
            masked[keep] = logits[i][keep]
            logits[i] = masked
    greedy = logits.argmax(-1).tolist()
    tokens = []
    for i, slot in enumerate(rows):
        request = slot.request
        if request.temperature <= 1e-5:
            tokens.append(greedy[i])
            continue
        probs = torch.softmax(logits[i] / request.temperature, dim=-1).cpu()
        if request.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            sorted_probs[sorted_probs.cumsum(-1) - sorted_probs > request.top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        tokens.append(int(torch.multinomial(probs, 1, generator=slot.generator)))
    return tokens


def _advance(bundle: ModelBundle, slot: Slot, token: int) -> bool:
    """Add one token to a slot, send what text is safe to send; True while the slot goes on."""
    if slot.cancelled.is_set():
        slot.done = True
        return False
    request = slot.request
    if token in bundle.eos_ids and not request.ignore_eos:
        return _finish(slot, _decode_text(bundle, slot), "stop")
    slot.generated.append(token)
    text = _decode_text(bundle, slot)
    cut = find_stop(text, request.stop)
    if cut is not None:
        return _finish(slot, text[:cut], "stop")
    if len(slot.generated) >= slot.max_tokens:
        return _finish(slot, text, "length")
    # A trailing U+FFFD is an incomplete multi-byte character: wait for its next byte.
    safe = min(len(text) - held_back(text, request.stop), len(text.rstrip("\ufffd")))
    if safe > slot.emitted:
        slot.emit(Delta(text[slot.emitted:safe]))
        slot.emitted = safe
    return not slot.done


def _decode_text(bundle: ModelBundle, slot: Slot) -> str:
    return bundle.tokenizer.decode(slot.generated, skip_special_tokens=True)


def _finish(slot: Slot, text: str, reason: str) -> bool:
    if len(text) > slot.emitted:
        slot.emit(Delta(text[slot.emitted:]))
        slot.emitted = len(text)
    slot.emit(Finished(reason, len(slot.prompt_ids), len(slot.generated)))
    return False
