"""GRPO diagnosis over trl-shaped log histories: each rule fires on its failure and stays quiet on a healthy run."""
from loraflow.tasks.training.diagnosis import diagnose
from loraflow.tasks.training.diagnosis_rl import diagnose_rl


def _history(rewards, zero=0.1, clipped=0.0, kl=0.01, evals=None) -> list[dict]:
    history = [{"step": i + 1, "loss": (-1) ** i * 0.3, "reward": r, "frac_reward_zero_std": zero, "kl": kl,
                "completions/clipped_ratio": clipped, "completions/mean_length": 30.0} for i, r in enumerate(rewards)]
    for step, fields in (evals or {}).items():
        history.append({"step": step, "eval_loss": 0.0, "eval_reward": 1.0,
                        **{f"eval_rewards/field_{name}/mean": v for name, v in fields.items()}})
    return sorted(history, key=lambda h: h["step"])


RISING = [0.5 + 0.1 * i for i in range(12)]


def codes(history) -> set[str]:
    return {f.code for f in diagnose(history) + diagnose_rl(history)}


def test_a_healthy_grpo_run_has_no_findings_and_its_jumpy_loss_is_not_judged():
    assert codes(_history(RISING, evals={6: {"category": 0.5}, 12: {"category": 0.7}})) == set()


def test_flat_reward():
    found = diagnose_rl(_history([1.0, 1.01, 0.99, 1.0, 1.0, 1.01, 1.0, 0.99]))
    assert [f.code for f in found] == ["reward_flat"]
    assert "did not rise" in found[0].message


def test_zero_advantage_groups():
    assert "zero_advantage_groups" in codes(_history(RISING, zero=0.75))


def test_reward_up_while_held_out_fields_fall_is_reward_hacking():
    found = [f for f in diagnose_rl(_history(RISING, evals={6: {"category": 0.8, "priority": 0.6},
                                                           12: {"category": 0.5, "priority": 0.5}}))]
    hacking = next(f for f in found if f.code == "reward_hacking")
    assert hacking.severity == "critical" and hacking.data["field_reward_after"] < hacking.data["field_reward_before"]


def test_kl_runaway_and_completions_at_the_length_limit():
    assert {"kl_runaway", "completions_at_length_limit"} <= codes(_history(RISING, kl=3.0, clipped=0.9))


def test_supervised_histories_are_not_judged_by_the_rl_rules():
    assert diagnose_rl([{"step": i, "loss": 2.0 - 0.1 * i} for i in range(10)]) == []
