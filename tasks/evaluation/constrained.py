"""Answers inside the declared schema: JSON-schema-constrained decoding from the task card's fields.

Where `task_card.fields` declares the answer's fields and classes, generation is masked token by token so the answer is
always one JSON object with exactly those fields, each categorical field one of its declared classes and each text field
a string, and nothing after the object but EOS. The masking is lm-format-enforcer's (the JSON-schema parser vLLM also
ships as a guided-decoding backend) through transformers' `prefix_allowed_tokens_fn`; evaluation and the built-in
server share it. `eval.constrained: false` shows what the model answers unconstrained. (The library's own transformers
integration imports names transformers 5 removed, so the vocabulary table it needs is built here from its core API.)
"""
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_TOKENIZER_DATA = "_loraflow_enforcer_data"  # cached on the tokenizer: building it decodes the whole vocabulary once
_ALPHABET: str | None = None  # text_alphabet(), built on first use
_ENFORCER = None  # the TokenEnforcer subclass, made on first use (the library is imported lazily)
_CHARACTER_SETS: dict[str, frozenset[str]] = {}  # allowed-character strings as sets, by their text
SCHEMA_FILE = "answer_schema.json"  # beside a released model's weights: the built-in server decodes under it


def answer_schema(fields: Mapping[str, Sequence[str] | str] | None) -> dict | None:
    """The JSON schema of an answer with the declared fields (all required, no others); None when none are declared."""
    if not fields:
        return None
    properties = {name: ({"type": "string"} if isinstance(values, str) else {"type": "string", "enum": list(values)})
                  for name, values in fields.items()}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def vocabulary_strings(tokenizer) -> list[tuple[int, str, bool]]:
    """(token id, text as it reads after a preceding token, starts a new word) for every non-special token.

    A SentencePiece/BPE token's leading space shows only after another token, so each is decoded behind a fixed one.
    """
    anchor = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    table = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        after = tokenizer.decode([anchor, token])[1:]
        table.append((token, after, len(after) > len(tokenizer.decode([token]))))
    return table


def write_answer_schema(model_dir: str | Path, fields: Mapping[str, Sequence[str] | str] | None) -> Path | None:
    """Write the answer schema of the declared fields into a model folder (None and nothing written without fields)."""
    schema = answer_schema(fields)
    if schema is None:
        return None
    path = Path(model_dir) / SCHEMA_FILE
    path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def read_answer_schema(model_dir: str | Path) -> dict | None:
    """The answer schema a model folder declares (write_answer_schema), or None."""
    path = Path(model_dir) / SCHEMA_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _tokenizer_data(tokenizer, stop_ids: Sequence[int]):
    cache = getattr(tokenizer, _TOKENIZER_DATA, None)
    if cache is None:
        cache = {}
        try:
            setattr(tokenizer, _TOKENIZER_DATA, cache)
        except AttributeError:  # a tokenizer that refuses new attributes: rebuilt per call, still correct
            pass
    key = tuple(stop_ids)
    if key not in cache:
        from lmformatenforcer import TokenEnforcerTokenizerData  # noqa: PLC0415

        cache[key] = TokenEnforcerTokenizerData(vocabulary_strings(tokenizer), lambda ids: tokenizer.decode(ids).rstrip("\ufffd"),
                                                list(stop_ids), False, len(tokenizer))
    return cache[key]


def text_alphabet() -> str:
    """Every character a free-text field may hold: the printable characters of the Basic Multilingual Plane.

    lm-format-enforcer's default alphabet is printable ASCII, and a character outside it ends the string in its parser's
    eyes: a Chinese product name stopped after its first character (SmolLM2 spells one ideograph in two byte tokens, the
    parser saw "相" and allowed only the JSON punctuation after it). The backslash stays out: the parser adds it itself,
    for escapes.
    """
    global _ALPHABET
    if _ALPHABET is None:
        from lmformatenforcer.consts import COMPLETE_ALPHABET  # noqa: PLC0415

        extra = (chr(code) for code in range(0x80, 0x10000) if chr(code).isprintable())
        _ALPHABET = COMPLETE_ALPHABET + "".join(extra)
    return _ALPHABET


def _enforcer_class():
    """lm-format-enforcer's TokenEnforcer, its token-tree walk intersecting from the tree's side.

    The library intersects `set(children)` with the parser's allowed characters as a string: with the full text
    alphabet (55k characters) that is a scan of the alphabet per tree node, 10x the walk's cost (5.8 ms a token against
    0.58 ms). Here the alphabet string becomes a set once (cached by its text) and each node looks up its own children.
    Otherwise the method is the library's (0.11.3).
    """
    global _ENFORCER
    if _ENFORCER is None:
        from lmformatenforcer import TokenEnforcer  # noqa: PLC0415

        class FastTokenEnforcer(TokenEnforcer):
            def _collect_allowed_tokens(self, parser, tree_node, allowed_tokens, shortcut_key):
                allowed_tokens.extend(tree_node.tokens)
                explore = _character_set(parser.get_allowed_characters()).intersection(tree_node.children)
                if isinstance(shortcut_key, tuple) and shortcut_key[0] == "json_freetext":
                    _, cur_len, min_len, max_len = shortcut_key
                    cache = self.tokenizer_tree.json_freetext_tokens
                    min_remaining = min(cache.max_token_len, max(0, min_len - cur_len))
                    max_allowed_len = min(cache.max_token_len, max_len - cur_len)
                    allowed_tokens.extend(cache.lookup_allowed_tokens(min_remaining, max_allowed_len).allowed_tokens)
                    explore = explore.intersection('"')
                for character in explore:
                    self._collect_allowed_tokens(parser.add_character(character), tree_node.children[character],
                                                 allowed_tokens, None)

        _ENFORCER = FastTokenEnforcer
    return _ENFORCER


def _character_set(characters: str) -> frozenset[str]:
    found = _CHARACTER_SETS.get(characters)
    if found is None:
        if len(_CHARACTER_SETS) > 256:
            _CHARACTER_SETS.clear()
        found = _CHARACTER_SETS[characters] = frozenset(characters)
    return found


def allowed_tokens_fn(tokenizer, schema: dict, stop_ids: Sequence[int]) -> Callable:
    """A fresh `prefix_allowed_tokens_fn` for one generate() call that keeps every row inside `schema` and ends it with
    one of `stop_ids` once the object is complete.

    One per call: the enforcer caches the states of the sequences it saw, keyed by their tokens.
    """
    from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser  # noqa: PLC0415

    # One whitespace character at a time: compact JSON. A base model left free indents ("{\n  ") and runs out of
    # max_new_tokens before the closing brace (15 of 84 base answers on hwu64 at 24 new tokens).
    config = CharacterLevelParserConfig(alphabet=text_alphabet(), max_consecutive_whitespaces=1)
    parser = JsonSchemaParser(schema, config=config)
    enforcer = _enforcer_class()(_tokenizer_data(tokenizer, stop_ids), parser)
    parser.config = config  # TokenEnforcer replaces it with one of the single-character tokens and default whitespace

    def allowed(batch_id: int, sequence) -> list[int]:
        return enforcer.get_allowed_tokens(sequence.tolist()).allowed_tokens

    return allowed


def schema_processors(tokenizer, schema: dict | None, stop_ids: Sequence[int]) -> list:
    """The logits processors that keep one generate() call's answers inside `schema` ([] without a schema)."""
    if not schema:
        return []
    from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor  # noqa: PLC0415

    return [PrefixConstrainedLogitsProcessor(allowed_tokens_fn(tokenizer, schema, stop_ids), num_beams=1)]
