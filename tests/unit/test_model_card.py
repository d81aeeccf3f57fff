"""The registered version's description and model card: task card, headline metrics, the gate's reasons, lineage."""
from loraflow.schemas.config import SuccessCriterion, TaskCard, TaskExample
from loraflow.schemas.results import PromotionDecision
from loraflow.tasks.deploy.model_card import headline_metrics, model_card_markdown, version_description

CARD = TaskCard(name="tickets", description="Extract support tickets as JSON.", output="JSON with category, priority",
                success_criteria=[SuccessCriterion(metric="json_field_accuracy", threshold=0.8)],
                examples=[TaskExample(input="My CloudDrive bill is wrong", output='{"category": "billing"}')])
METRICS = {"n": 28, "bleu": 31.5, "exact_match": 0.25, "json_field_accuracy": 0.875}
DECISION = PromotionDecision(False, ["fail: task-card criterion json_field_accuracy >= 0.8", "pass: no slice regressed"])


def test_the_success_metric_leads_the_headline_metrics_and_counts_are_left_out():
    assert list(headline_metrics(METRICS, CARD)) == ["json_field_accuracy", "bleu", "exact_match"]


def test_description_and_card_carry_the_task_metrics_gate_reasons_and_data_hash():
    data_hash = "c0ffee" * 10
    description = version_description(CARD, data_hash, METRICS, DECISION, "run-1")
    assert description.startswith("tickets: Extract support tickets as JSON.")
    assert f"json_field_accuracy {METRICS['json_field_accuracy']:.4f}" in description and "not promoted" in description
    assert all(reason in description for reason in DECISION.reasons) and data_hash[:12] in description
    card = model_card_markdown(CARD, data_hash, METRICS, DECISION, "run-1")
    assert f"| json_field_accuracy | >= 0.8 | {METRICS['json_field_accuracy']:.4f} |" in card
    assert "- output: JSON with category, priority" in card and '{"category": "billing"}' in card
    assert all(f"- {reason}" in card for reason in DECISION.reasons) and f"`{data_hash}`" in card and "| n |" not in card
