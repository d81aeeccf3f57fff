"""LLM-as-judge: scoring the rubric through an OpenAI-compatible endpoint (off by default)."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class JudgeConfig(Section):
    enabled: bool = Field(False, description="Score the candidate's answers with an LLM judge after evaluation (needs an endpoint).")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API base; the judge POSTs to BASE_URL/chat/completions.")
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (unset: no Authorization header).")
    max_cases: int | None = Field(
        100, ge=1, description="Judge at most this many test cases, sampled like `human-eval export` with the same seed (None: all)."
    )
    seed: int = Field(42, ge=0, description="Sampling seed; equal to the human-eval export seed so both score the same cases.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
