"""Which token ids end an answer: the one rule generation, the parity check and the server follow."""


def eos_ids(value: int | list[int] | None) -> list[int]:
    """A generation config's eos_token_id (one id, a list or None) as a list of ids."""
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer: the model's generation config EOS id(s), then the tokenizer's EOS if not among them."""
    ids = eos_ids(getattr(model.generation_config, "eos_token_id", None))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(int(tokenizer.eos_token_id))
    return ids
