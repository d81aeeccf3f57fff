"""Evaluation: generation settings, comparison and the promotion gate's tolerances."""
from pydantic import Field

from schemas.config._base import Section


class EvalConfig(Section):
    max_new_tokens: int = Field(128, ge=1, description="Tokens to generate per test case.")
    batch_size: int = Field(8, ge=1, description="Test cases generated together (batched, left-padded).")
    max_samples: int | None = Field(None, ge=1, description="Evaluate at most this many test cases (default: all).")
    compare_base: bool = Field(True, description="Also evaluate the base model on the same test set.")
    slice_by: list[str] = Field(default_factory=lambda: ["language"], description="Metadata fields to report metrics per value of.")
    slice_tolerance: float = Field(0.05, ge=0.0, description="Promotion gate: largest allowed drop of the success metric on any slice.")
    slice_min_n: int = Field(5, ge=1, description="Promotion gate: slices with fewer test cases are reported but not gated (too noisy to judge).")
    bootstrap_samples: int = Field(1000, ge=100, description="Resamples for the paired bootstrap confidence interval.")
    badcases: int = Field(20, ge=0, description="Worst test cases to analyse and export.")
