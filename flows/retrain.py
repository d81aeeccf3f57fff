"""Retrain from feedback: export a batch -> grow the dataset lineage -> the finetune pipeline -> record the lineage in MLflow."""
from prefect import flow

from loraflow.flows import DEFAULT_CONFIG, subflow_result
from loraflow.flows.finetune import finetune
from loraflow.tasks.steps import feedback, planning


@flow(name="retrain-from-feedback")
def retrain_from_feedback(batch_id: str = "", config_path: str = DEFAULT_CONFIG, overrides: list[str] = [],  # noqa: B006
                          out_dir: str = "", lineage_dir: str = "", feedback_eval_share: float = 0.2) -> dict:
    """Retrain on a feedback batch; the promotion gate decides whether the new model becomes the champion.

    Args:
        batch_id: The feedback batch the API claimed; empty (a scheduled run, or Run with no edits) claims all pending feedback now, and does nothing when none is pending.
        config_path: Pipeline YAML, relative to the repository root; its data.path is replaced by the lineage's new version.
        overrides: Any other setting as dotted.key=value, e.g. train.max_steps=50.
        out_dir: Run folder; empty: $LORAFLOW_HOME/runs/retrain-<batch id>.
        lineage_dir: Dataset lineage folder; empty: $LORAFLOW_HOME/lineage/<task name>.
        feedback_eval_share: Share of the corrections held out as the feedback-eval set instead of trained on.
    """
    config = planning.load_pipeline_config(config_path, overrides)
    batch = feedback.claim_feedback_batch(config.feedback, batch_id or None)
    if batch is None:
        return {"batch_id": None, "trained": False, "reason": "no pending feedback"}
    exported = feedback.export_feedback(config=config.feedback, batch_id=batch, out_dir=out_dir or None)
    # A preference objective learns from the batch's pairs (correction over the model's answer, ...), else its corrections;
    # GRPO from either: on pair data the pairs (chosen = reference, the thumbs-down answer scoring low), else the
    # corrections (the correction = reference, the answer it replaced scoring low).
    pairs = config.train.objective in ("dpo", "orpo", "sft_then_dpo") or config.data.kind == "preference"
    prepared = feedback.prepare_lineage_version(task_name=config.task_card.name, lineage_dir=lineage_dir or None,
                                                exported=exported, eval_share=feedback_eval_share, pairs=pairs)
    run_config = feedback.config_for_lineage_version(config, prepared)
    result = subflow_result(finetune(config=run_config, out_dir=exported.run_dir))
    committed = feedback.commit_lineage_version(prepared=prepared, run_dir=exported.run_dir, result=result)
    recorded = feedback.record_feedback_lineage(result, committed)
    return {"batch_id": batch, "trained": True, "run_dir": exported.run_dir, "lineage_version": committed.version,
            **recorded.to_dict()}
