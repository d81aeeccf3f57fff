"""The one frozen pipeline config, nested by stage; each task gets only its own part."""
from pydantic import Field

from loraflow.schemas.config._base import Section
from loraflow.schemas.config.augment import AugmentConfig
from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.config.deploy import DeployConfig
from loraflow.schemas.config.evaluate import EvalConfig
from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.schemas.config.judge import JudgeConfig
from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.model import ModelConfig
from loraflow.schemas.config.serve import ServeConfig
from loraflow.schemas.config.split import SplitConfig
from loraflow.schemas.config.task_card import SuccessCriterion, TaskCard, TaskExample
from loraflow.schemas.config.tracking import TrackingConfig
from loraflow.schemas.config.train import TrainConfig


class PipelineConfig(Section):
    task_card: TaskCard = Field(default_factory=TaskCard, description="What the model must do and how success is judged.")
    data: DataConfig = Field(default_factory=DataConfig, description="Input data and validation.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="Normalisation, deduplication, quality filters.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Training-data augmentation (off by default).")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/val/test split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter shape.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training hyper-parameters.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation and promotion gate.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM-as-judge scoring of the rubric (off by default).")
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Registration, merge, quantisation.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The OpenAI-compatible model server.")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="The feedback API and retrain trigger.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow and Prefect locations.")


# (key path, low, high, applies) — the guide's recommended ranges; outside them is legal but unusual.
_RECOMMENDED = [
    ("train.learning_rate", 1e-4, 2e-4, lambda c: c.train.method in ("lora", "qlora", "auto"), lambda c: c.train.resolved_learning_rate),
    ("train.learning_rate", 1e-5, 2e-5, lambda c: c.train.method == "full", lambda c: c.train.resolved_learning_rate),
    ("train.effective_batch_size", 16, 32, lambda c: True, lambda c: c.train.effective_batch_size),
    ("train.epochs", 3, 5, lambda c: c.train.max_steps < 0, lambda c: c.train.epochs),
    ("train.warmup_ratio", 0.05, 0.1, lambda c: True, lambda c: c.train.warmup_ratio),
    ("train.weight_decay", 0.01, 0.1, lambda c: True, lambda c: c.train.weight_decay),
    ("lora.r", 8, 16, lambda c: c.train.method != "full", lambda c: c.lora.r),
    ("split.train", 0.7, 0.8, lambda c: True, lambda c: c.split.train),
    ("split.val", 0.1, 0.15, lambda c: True, lambda c: c.split.val),
    ("split.test", 0.1, 0.15, lambda c: True, lambda c: c.split.test),
]


def recommendation_warnings(config: PipelineConfig) -> list[str]:
    """Warnings for legal values outside the fine-tuning guide's recommended ranges."""
    found = []
    for key, low, high, applies, value_of in _RECOMMENDED:
        if not applies(config):
            continue
        value = value_of(config)
        if not low - 1e-12 <= value <= high + 1e-12:
            found.append(f"{key}={value:g} is outside the recommended range {low:g}..{high:g}")
    return found


__all__ = [
    "AugmentConfig", "CleanConfig", "DataConfig", "DeployConfig", "EvalConfig", "FeedbackConfig", "JudgeConfig", "ServeConfig", "LoraConfig", "ModelConfig",
    "PipelineConfig", "Section", "SplitConfig", "SuccessCriterion", "TaskCard", "TaskExample", "TrackingConfig",
    "TrainConfig", "recommendation_warnings",
]
