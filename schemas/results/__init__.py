"""What each pipeline step returns: small frozen types, so flows read attributes and the type checker follows.

One module per stage, like tasks/. The stage functions return these themselves; `to_dict` gives a dict back to the
writers that keep one format on disk (run.json, the data report). Results that nest typed parts and are read back from
JSON (the evaluation summary in eval/metrics.json, the run outcome in run.json) are frozen pydantic models (ResultModel).
A field that stays a `dict` or `Any` says why on its line (tests/unit/test_architecture.py checks it).
"""
from loraflow.schemas.results.data import (DataReport, DataStageResult, InputFiles, LengthChoice, PreparedData, Splits,
                                           StreamingPlan, TokenLengths)
from loraflow.schemas.results.deploy import AliasMove, Champion, QuantizedVariant, RegisteredModel
from loraflow.schemas.results.evaluation import (BadcaseSummary, CategoricalScores, Comparison, CriterionOutcome, EvaluationSummary, EvaluationTarget,
                                                 EvaluationVerdict, FieldCheck, GateResult, HeldOutRewards, JudgeSummary,
                                                 ModelEvaluation, PreferenceAccuracy, PromotionDecision, TextScores)
from loraflow.schemas.results.feedback import (EvaluationSets, ExportedBatch, FeedbackRecorded, LineageVersion,
                                               MonitorSummary, RecentFeedback)
from loraflow.schemas.results.tracking import FinishedRun, RunOutcome, TrackingRun
from loraflow.schemas.results.training import SweepResult, SweepRun, SweepTrial, TrainingResult, TrialMetric

__all__ = ["AliasMove", "BadcaseSummary", "CategoricalScores", "Champion", "Comparison", "CriterionOutcome", "DataReport", "DataStageResult",
           "EvaluationSets", "EvaluationSummary", "EvaluationTarget", "EvaluationVerdict", "ExportedBatch", "FieldCheck",
           "FeedbackRecorded", "FinishedRun", "GateResult", "HeldOutRewards", "InputFiles", "JudgeSummary", "LengthChoice", "LineageVersion", "ModelEvaluation",
           "MonitorSummary", "PreferenceAccuracy", "PreparedData", "PromotionDecision", "QuantizedVariant", "RecentFeedback", "RegisteredModel", "RunOutcome",
           "Splits", "StreamingPlan", "TokenLengths", "SweepResult", "SweepRun", "SweepTrial", "TextScores", "TrackingRun", "TrainingResult", "TrialMetric"]
