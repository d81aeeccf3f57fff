"""Splitting into train/val/test without leakage."""
from pydantic import Field, model_validator

from loraflow.schemas.config._base import Section
from loraflow.schemas.config.clean import NearDupCompare


class SplitConfig(Section):
    train: float = Field(0.8, gt=0.0, lt=1.0, description="Train share (guide: 0.7-0.8).")
    val: float = Field(0.1, ge=0.0, lt=1.0, description="Validation share (guide: 0.1-0.15).")
    test: float = Field(0.1, gt=0.0, lt=1.0, description="Test share (guide: 0.1-0.15).")
    seed: int = Field(42, ge=0, description="Seed for the random split.")
    stratify_by: str | None = Field(None, description="Metadata field to stratify on (each value spread over the splits in the same ratios).")
    time_field: str | None = Field(None, description="Metadata timestamp field: when set, split by time (train earliest, test latest).")
    group_by: str | None = Field(None, description="Metadata field whose equal values stay in one split (parent ids always do).")
    frozen_test: str | None = Field(None, description="Path of a frozen test.jsonl from an earlier run of this lineage; kept as the test split.")
    leakage_check: bool = Field(
        True, description="Keep exact duplicates, same-prompt records and near duplicates in one split: they are split "
        "as units (so the shares hold), and any linked to a frozen test set move into it.")
    leakage_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Estimated Jaccard similarity at or above which records in different splits count as leaked near-duplicates.")
    leakage_compare: NearDupCompare = Field(
        "turns", description="What leakage near-duplicate detection compares, as clean.near_dup_compare: request turns and "
        "answers each (turns) or the whole conversation (conversation).")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split shares train+val+test must sum to 1.0, got {total:.3f}")
        return self
