"""Diagnosis rules on synthetic HF-style log histories."""
import math
import random

from loraflow.tasks.training.diagnosis import Finding, Thresholds, diagnose, diagnosis_tags, render_diagnosis_markdown


def history(losses, evals=None, grads=None, every=10, lr=2e-4):
    """An HF Trainer log_history: a train entry every `every` steps, eval entries, and the closing summary entry."""
    rows = []
    for i, loss in enumerate(losses):
        step = (i + 1) * every
        rows.append({"loss": loss, "grad_norm": grads[i] if grads else 1.0, "learning_rate": lr, "epoch": step / 100, "step": step})
        if evals and step in evals:
            rows.append({"eval_loss": evals[step], "eval_runtime": 1.0, "epoch": step / 100, "step": step})
    rows.append({"train_runtime": 10.0, "train_loss": sum(losses) / len(losses), "epoch": 3.0, "step": len(losses) * every})
    return rows


def healthy(n=40, seed=0):
    rng = random.Random(seed)
    return [0.6 + 1.8 * math.exp(-i / 8) + rng.uniform(-0.01, 0.01) for i in range(n)]


def codes(findings):
    return [f.code for f in findings]


def test_healthy_curve_has_no_findings():
    evals = {100: 1.2, 200: 0.9, 300: 0.8, 400: 0.79}
    grads = [1.0 + 0.1 * math.sin(i) for i in range(40)]
    assert diagnose(history(healthy(), evals, grads)) == []
    assert "No problems found" in render_diagnosis_markdown([])


def test_flat_loss_is_not_falling_and_blames_lr_or_data():
    rng = random.Random(1)
    findings = diagnose(history([2.0 + rng.uniform(-0.01, 0.01) for _ in range(30)], lr=1e-6))
    assert codes(findings) == ["loss_not_falling"]
    assert "learning rate (peak 1e-06) may be too small" in findings[0].message
    assert "data" in findings[0].message and findings[0].step == 300


def test_too_few_points_are_not_judged():
    assert diagnose(history([2.0, 2.0, 2.0])) == []


def test_train_falling_val_rising_is_overfitting_pointing_at_the_best_step():
    evals = {100: 1.5, 200: 1.1, 300: 1.15, 400: 1.3}
    findings = diagnose(history(healthy(), evals))
    assert codes(findings) == ["overfitting"]
    assert findings[0].step == 200 and "best checkpoint (step 200)" in findings[0].message


def test_val_rising_within_patience_or_with_train_flat_is_not_overfitting():
    assert diagnose(history(healthy(), {100: 1.5, 200: 1.1, 300: 1.15, 400: 1.3}), Thresholds(overfit_patience=3)) == []
    flat = [1.0] * 40
    found = diagnose(history(flat, {100: 1.5, 200: 1.1, 300: 1.15, 400: 1.3}))
    assert "overfitting" not in codes(found)


def test_spike_names_the_step_the_lr_and_the_batch_records():
    losses = healthy()
    losses[24] = losses[23] * 4
    findings = diagnose(history(losses), batch_records={250: ["rec-7", "rec-9"]})
    assert codes(findings) == ["loss_spike"]
    spike = findings[0]
    assert spike.step == 250 and spike.data["record_ids"] == ["rec-7", "rec-9"]
    assert "rec-7, rec-9" in spike.message and "learning rate (0.0002) may be too large" in spike.message


def test_strong_oscillation_asks_for_lower_lr_or_bigger_batch():
    losses = [2.0 - 0.05 * i for i in range(16)] + [1.2 + (0.4 if i % 2 else -0.4) for i in range(20)]
    findings = diagnose(history(losses))
    assert "oscillation" in codes(findings)
    assert "lower the learning rate or raise the (effective) batch size" in findings[codes(findings).index("oscillation")].message


def test_nan_is_critical_first_and_stops_judging_the_rest():
    losses = healthy()
    losses[10:] = [float("nan")] * 30
    findings = diagnose(history(losses))
    assert codes(findings) == ["non_finite"]
    assert findings[0].severity == "critical" and findings[0].step == 110
    assert "last good checkpoint" in findings[0].message


def test_infinite_grad_norm_is_non_finite():
    grads = [1.0] * 40
    grads[5] = float("inf")
    findings = diagnose(history(healthy(), grads=grads))
    assert findings[0].code == "non_finite" and findings[0].data["metric"] == "grad_norm" and findings[0].step == 60


def test_exploding_and_vanishing_grad_norms():
    grads = [1.0] * 40
    grads[30] = 40.0
    exploding = diagnose(history(healthy(), grads=grads))
    assert codes(exploding) == ["exploding_grad_norm"] and exploding[0].step == 310
    vanishing = diagnose(history(healthy(), grads=[1.0] * 30 + [1e-9] * 10))
    assert codes(vanishing) == ["vanishing_grad_norm"]
    assert "labels are not all masked" in vanishing[0].message


def test_findings_sorted_worst_first_and_rendered_and_tagged():
    losses = [2.0] * 12 + [float("inf")]
    grads = [1.0] * 10 + [50.0, 1.0, 1.0]
    findings = diagnose(history(losses, grads=grads))
    assert findings[0].severity == "critical"
    assert {"non_finite", "exploding_grad_norm", "loss_not_falling"} == set(codes(findings))
    markdown = render_diagnosis_markdown(findings)
    assert markdown.count("\n| ") == len(findings) + 1  # header + one row per finding
    assert "| critical | non_finite | 130 |" in markdown
    tags = diagnosis_tags(findings)
    assert tags["diagnosis.status"] == "critical"
    assert tags["diagnosis.exploding_grad_norm"] == "warning; steps 110"
    assert diagnosis_tags([]) == {"diagnosis.status": "ok"}


def test_finding_keys_dedupe_events_per_step_and_trends_once():
    assert Finding("loss_spike", "warning", "m", 10).key != Finding("loss_spike", "warning", "m", 20).key
    assert Finding("overfitting", "warning", "m", 10).key == Finding("overfitting", "warning", "m", 20).key
    assert Finding("oscillation", "warning", "m", 5).to_dict()["code"] == "oscillation"
