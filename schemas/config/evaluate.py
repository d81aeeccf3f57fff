"""Evaluation: generation settings, comparison and the promotion gate's tolerances."""
from typing import Literal

from pydantic import Field

from loraflow.schemas.config._base import Section


class EvalConfig(Section):
    max_new_tokens: int = Field(128, ge=1, description="Tokens to generate per test case.")
    batch_size: int = Field(8, ge=1, description="Test cases generated together (batched, left-padded).")
    max_samples: int | None = Field(None, ge=1, description="Evaluate at most this many test cases (default: all).")
    constrained: bool = Field(
        True, description="Where task_card.fields declares the answer's fields, decode every model's answer under that JSON "
        "schema (valid JSON, exactly the declared fields, a declared class in each categorical field; lm-format-enforcer). "
        "false: the unconstrained answers, to see what the model does on its own.")
    compare_base: bool = Field(True, description="Also evaluate the base model on the same test set.")
    slice_by: list[str] = Field(default_factory=lambda: ["language"], description="Metadata fields to report metrics per value of.")
    slice_tolerance: float = Field(0.05, ge=0.0, description="Promotion gate: largest allowed drop of the success metric on any slice.")
    slice_min_n: int = Field(5, ge=1, description="Promotion gate: slices with fewer test cases are reported but not gated (too noisy to judge).")
    bootstrap_samples: int = Field(1000, ge=100, description="Resamples for the paired bootstrap confidence interval.")
    baselines: bool = Field(True, description="For JSON answers, also score baseline predictors on the test set: TF-IDF + "
                            "logistic regression per categorical field fitted on the train split (`classical`), each field's "
                            "majority training value, a seeded stratified-random draw; the gate requires beating the majority.")
    beat_classical: Literal["warn", "require", "off"] = Field(
        "warn", description="Promotion gate against the classical baseline (TF-IDF + logistic regression) on every "
        "categorical field: warn (the decision says in one line where the candidate's macro-F1 is not above it by the "
        "paired-bootstrap CI), require (refuse promotion then), off. A fine-tune that a ten-line classifier matches "
        "may not be worth serving.")
    gate_fields: bool = Field(True, description="Promotion gate: every categorical answer field must beat the majority-class "
                              "predictor (macro-F1, paired bootstrap CI above 0) and must not collapse onto one value. "
                              "Off only for plumbing checks with random models (examples/tiny).")
    collapse_margin: float = Field(
        0.5, ge=0.0, le=1.0, description="Promotion gate: a categorical field has collapsed when the candidate's most "
        "frequent answer is more common than the reference's most frequent value plus this share of the remaining gap to "
        "100% (reference top class 53% -> at most 76.5% of the answers may be one value).")
    seed: int = Field(0, description="Seed for the bootstrap resamples and the stratified-random baseline.")
    badcases: int = Field(20, ge=0, description="Worst test cases to analyse and export.")
