"""Pandera contracts per data stage: raw formats -> canonical record -> clean record -> split record."""
import unicodedata
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
SPLITS = ("train", "val", "test")
# Pandera's built-in check names, renamed to the reason codes users see in quarantine.jsonl.
_STRUCTURE_CHECKS = {"messages_structure", "messages_are_turns", "conversations_are_turns"}
_CHECK_NAMES = {"field_uniqueness": "unique_id", "not_nullable": "not_null", "column_in_dataframe": "missing_field"}


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_turn_list(value: Any, role_key: str, text_key: str) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(
        isinstance(m, dict) and isinstance(m.get(role_key), str) and isinstance(m.get(text_key), str) for m in value
    )


def _content_text(value: Any) -> bool:
    # OpenAI content may also be a list of {"type": "text", "text": ...} parts.
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value)
    )


class OpenAIRaw(pa.DataFrameModel):
    """OpenAI chat format: {"messages": [{"role", "content"}, ...]}."""

    messages: Series[object]

    class Config:
        strict = False

    @pa.check("messages", element_wise=True)
    def messages_are_turns(cls, value: Any) -> bool:
        return isinstance(value, list) and len(value) > 0 and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and _content_text(m.get("content")) for m in value
        )


class AlpacaRaw(pa.DataFrameModel):
    """Alpaca format: {"instruction", "input"?, "output", "system"?}."""

    instruction: Series[object] = pa.Field(nullable=False)
    output: Series[object] = pa.Field(nullable=False)
    input: Series[object] | None = pa.Field(nullable=True)
    system: Series[object] | None = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.check("instruction", "output", element_wise=True)
    def is_text(cls, value: Any) -> bool:
        return _is_text(value)

    @pa.check("input", "system", element_wise=True)
    def is_text_or_empty(cls, value: Any) -> bool:
        return value is None or _is_text(value)


class ShareGPTRaw(pa.DataFrameModel):
    """ShareGPT format: {"conversations": [{"from": human|gpt|system, "value"}, ...]}."""

    conversations: Series[object]

    class Config:
        strict = False

    @pa.check("conversations", element_wise=True)
    def conversations_are_turns(cls, value: Any) -> bool:
        return _is_turn_list(value, "from", "value")

    @pa.check("conversations", element_wise=True)
    def sharegpt_roles_valid(cls, value: Any) -> bool:
        return isinstance(value, list) and all(not isinstance(m, dict) or m.get("from") in SHAREGPT_ROLES for m in value)


class PromptCompletionRaw(pa.DataFrameModel):
    """Prompt/completion format: strings, or lists of chat turns (TRL's conversational form)."""

    prompt: Series[object]
    completion: Series[object]

    class Config:
        strict = False

    @pa.check("prompt", "completion", element_wise=True)
    def text_or_turns(cls, value: Any) -> bool:
        return _is_text(value) or _is_turn_list(value, "role", "content")


class CanonicalRecord(pa.DataFrameModel):
    """The canonical record every stage hands on: {id, messages: [{role, content}], metadata}."""

    id: Series[object] = pa.Field(unique=True)
    messages: Series[object]
    metadata: Series[object]
    n_tokens: Series[pd.Int64Dtype] | None = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.check("id", element_wise=True)
    def id_is_text(cls, value: Any) -> bool:
        return isinstance(value, str) and value.strip() != ""

    @pa.check("metadata", element_wise=True)
    def metadata_is_object(cls, value: Any) -> bool:
        return isinstance(value, dict)

    @pa.check("messages", element_wise=True)
    def messages_structure(cls, value: Any) -> bool:
        return _is_turn_list(value, "role", "content")

    @pa.check("messages", element_wise=True)
    def roles_valid(cls, value: Any) -> bool:
        return isinstance(value, list) and all(not isinstance(m, dict) or m.get("role") in ROLES for m in value)

    @pa.check("messages", element_wise=True)
    def ends_with_assistant(cls, value: Any) -> bool:
        return isinstance(value, list) and bool(value) and isinstance(value[-1], dict) and value[-1].get("role") == "assistant"

    @pa.check("messages", element_wise=True)
    def has_user_turn(cls, value: Any) -> bool:
        return isinstance(value, list) and any(isinstance(m, dict) and m.get("role") == "user" for m in value)

    @pa.check("messages", element_wise=True)
    def no_empty_content(cls, value: Any) -> bool:
        return isinstance(value, list) and all(
            not isinstance(m, dict) or not isinstance(m.get("content"), str) or m["content"].strip() != "" for m in value
        )


class CleanRecord(CanonicalRecord):
    """A cleaned record: normalised text and a detected language in metadata."""

    @pa.check("messages", element_wise=True)
    def content_normalized(cls, value: Any) -> bool:
        return all(unicodedata.is_normalized("NFKC", m["content"]) for m in value)

    @pa.check("metadata", element_wise=True)
    def language_tagged(cls, value: Any) -> bool:
        return isinstance(value, dict) and isinstance(value.get("language"), str)


class SplitRecord(CleanRecord):
    """A record placed in exactly one split (ids unique across all splits)."""

    split: Series[object] = pa.Field(isin=list(SPLITS))


def explain(check: str, column: str, value: Any) -> tuple[str, Any]:
    """The precise field path and offending value behind a failed element-wise check."""
    if column in ("messages", "conversations") and isinstance(value, list):
        role_key, text_key = ("from", "value") if column == "conversations" else ("role", "content")
        for i, m in enumerate(value):
            if not isinstance(m, dict):
                return f"{column}[{i}]", m
            if check in ("roles_valid", "sharegpt_roles_valid") and m.get(role_key) not in (
                SHAREGPT_ROLES if column == "conversations" else ROLES
            ):
                return f"{column}[{i}].{role_key}", m.get(role_key)
            if check in ("messages_structure", "conversations_are_turns", "messages_are_turns"):
                if not isinstance(m.get(role_key), str):
                    return f"{column}[{i}].{role_key}", m.get(role_key)
                ok = _content_text(m.get(text_key)) if check == "messages_are_turns" else isinstance(m.get(text_key), str)
                if not ok:
                    return f"{column}[{i}].{text_key}", m.get(text_key)
            if check == "no_empty_content" and isinstance(m.get(text_key), str) and not m[text_key].strip():
                return f"{column}[{i}].{text_key}", m[text_key]
        if check == "ends_with_assistant" and value and isinstance(value[-1], dict):
            return f"{column}[{len(value) - 1}].{role_key}", value[-1].get(role_key)
        if check == "has_user_turn":
            return f"{column}[*].{role_key}", [m.get(role_key) for m in value if isinstance(m, dict)]
    return column, value


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def row_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dict[Any, list[dict]]:
    """Validate lazily and return {row index: [reason {check, field, value}, ...]} for every failing row."""
    try:
        schema.validate(frame, lazy=True)
        return {}
    except SchemaErrors as err:
        cases = err.failure_cases
    reasons: dict[Any, list[dict]] = {}
    for case in cases.itertuples(index=False):
        check = str(case.check).split("(")[0] if case.check is not None else "schema"
        column = str(case.column)
        check = "max_tokens" if column == "n_tokens" and check != "not_null" else _CHECK_NAMES.get(check, check)
        rows = [case.index] if case.index is not None and not pd.isna(case.index) else list(frame.index)
        for row in rows:
            value = frame.at[row, column] if column in frame.columns else None
            field, shown = explain(check, column, value) if column in frame.columns else (column, None)
            if check in ("unique_id", "max_tokens", "id_is_text", "metadata_is_object", "not_null", "is_text",
                         "is_text_or_empty", "text_or_turns"):
                shown = value
            reasons.setdefault(row, []).append({"check": check, "field": field, "value": _jsonable(shown)})
    # A malformed turn list fails every turn check; its structure failure alone says why.
    for row, found in reasons.items():
        structural = {r["field"].split("[")[0] for r in found if r["check"] in _STRUCTURE_CHECKS}
        if structural:
            reasons[row] = [r for r in found if r["check"] in _STRUCTURE_CHECKS or r["field"].split("[")[0] not in structural]
    return reasons
