"""What a request asks for and the events a request produces while it is generated."""
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion to generate; temperature 0 means greedy."""

    messages: list[dict]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    # The JSON schema the answer must follow: "model" (the served model's declared answer schema, if it has one),
    # None (free text), or a schema given with the request (OpenAI's response_format json_schema).
    schema: dict | str | None = "model"


@dataclass(frozen=True)
class Started:
    """The request entered a batch; its prompt is tokenized."""

    prompt_tokens: int
    model_version: str | None


@dataclass(frozen=True)
class Delta:
    """New text of the answer."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The answer is complete."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    """The request could not be served; status is the HTTP code to answer with."""

    message: str
    status: int = 400


Event = Started | Delta | Finished | Failed


@dataclass(frozen=True)
class Completion:
    """A whole answer, as the blocking API returns it."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model_version: str | None
