"""Augmentation: off by default, per method; augmented records only go to train."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class AugmentConfig(Section):
    synonym: bool = Field(False, description="Synonym replacement (jieba + offline lexicon for Chinese, WordNet for English).")
    back_translation: bool = Field(False, description="Back-translation through the chat endpoint (rule-based fallback offline).")
    paraphrase: bool = Field(False, description="Paraphrase through the chat endpoint (rule-based fallback offline).")
    ratio: float = Field(0.2, ge=0.0, le=5.0, description="Augmented records to create per training record, per method.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL (e.g. http://vllm:8000/v1) used for back-translation and paraphrase.")
    endpoint_model: str | None = Field(None, description="Model name to request from the endpoint.")
    min_length_ratio: float = Field(0.5, gt=0.0, description="Quality gate: augmented/parent length ratio must be at least this.")
    max_length_ratio: float = Field(2.0, gt=0.0, description="Quality gate: augmented/parent length ratio must be at most this.")
    min_similarity: float = Field(0.3, ge=0.0, le=1.0, description="Quality gate: below this similarity to the parent the record drifted.")
    max_similarity: float = Field(0.95, ge=0.0, le=1.0, description="Quality gate: above this similarity to the parent the record is a copy.")
    seed: int = Field(42, ge=0, description="Seed for augmentation choices.")
    synonym_fraction: float = Field(
        0.15, gt=0.0, le=1.0, description="Share of a prompt's replaceable content words swapped per synonym rewrite (at least one)."
    )
    endpoint_temperature: float = Field(0.8, ge=0.0, le=2.0, description="Sampling temperature for endpoint paraphrases and translations.")
    endpoint_timeout_s: float = Field(60.0, gt=0.0, description="Seconds to wait for one chat-endpoint answer before it counts as a transient failure.")
    endpoint_concurrency: int = Field(4, ge=1, le=64, description="Chat requests in flight at once (vLLM batches concurrent requests).")
    endpoint_api_key_env: str = Field(
        "LORAFLOW_ENDPOINT_API_KEY", description="Environment variable holding the endpoint's API key (sent as a Bearer token when set)."
    )
