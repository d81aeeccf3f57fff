"""What each pipeline step returns: small frozen types, so flows read attributes and the type checker follows.

One module per stage, like tasks/. Plain functions may build these from their own dicts (`from_dict`), and a few
give a dict back (`to_dict`) to the writers that keep one format on disk (run.json, the data report).
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
