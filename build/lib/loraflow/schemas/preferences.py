"""Pandera contracts for preference data: raw pair formats -> the canonical preference record.

The canonical preference record is a canonical record whose `messages` end with the chosen answer, plus
`rejected`: the answer that lost, to the same conversation. Every data stage that works on `messages`
(cleaning, deduplication, leak-free splitting) therefore treats pairs like supervised records.
"""
from typing import Any

import pandera.pandas as pa
from pandera.typing import Series

from loraflow.schemas.records import CanonicalRecord, _is_text, _is_turn_list


def _answer(value: Any) -> bool:
    """A completion that is one answer: a string, or a list holding exactly one assistant turn."""
    return _is_text(value) or (_is_turn_list(value, "role", "content") and len(value) == 1
                               and value[0]["role"] == "assistant")


def _conversation(value: Any) -> bool:
    return _is_turn_list(value, "role", "content") and value[-1]["role"] == "assistant"


class PreferenceRaw(pa.DataFrameModel):
    """Hugging Face preference layouts: {prompt, chosen, rejected} (strings or turns) or implicit-prompt {chosen, rejected}."""

    chosen: Series[object]
    rejected: Series[object]
    prompt: Series[object] | None = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.check("chosen", "rejected", element_wise=True)
    def one_answer_or_conversation(cls, value: Any) -> bool:
        # With a prompt column the answers are single completions; without one they are whole conversations.
        return _answer(value) or _conversation(value)

    @pa.check("prompt", element_wise=True)
    def prompt_text_or_turns(cls, value: Any) -> bool:
        return value is None or _is_text(value) or _is_turn_list(value, "role", "content")


class OpenAIPreferenceRaw(pa.DataFrameModel):
    """OpenAI preference fine-tuning: {input: {messages}, preferred_output: [turn], non_preferred_output: [turn]}."""

    input: Series[object]
    preferred_output: Series[object]
    non_preferred_output: Series[object]

    class Config:
        strict = False

    @pa.check("input", element_wise=True)
    def input_has_messages(cls, value: Any) -> bool:
        return isinstance(value, dict) and _is_turn_list(value.get("messages"), "role", "content")

    @pa.check("preferred_output", "non_preferred_output", element_wise=True)
    def output_is_one_answer(cls, value: Any) -> bool:
        return _answer(value)


class PreferenceRecord(CanonicalRecord):
    """A canonical record whose last assistant turn is the chosen answer, with the rejected answer beside it."""

    rejected: Series[object]

    @pa.check("rejected", element_wise=True)
    def rejected_is_text(cls, value: Any) -> bool:
        return isinstance(value, str) and value.strip() != ""


def is_pair(record: dict) -> bool:
    """Whether a canonical record is a preference pair (it carries a rejected answer)."""
    return "rejected" in record


def rejected_messages(record: dict) -> list[dict]:
    """The pair's conversation with the rejected answer in place of the chosen one."""
    return [*record["messages"][:-1], {"role": "assistant", "content": record["rejected"]}]
