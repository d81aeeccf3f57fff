"""Prefect wrapper for held-out preference accuracy (base, candidate, champion) on the test split's pairs."""
import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE


@task(name="preference-accuracy", cache_policy=NO_CACHE)
def preference_accuracy(models: dict[str, tuple[str, str | None] | None], test_path: str, out_dir: str) -> dict | None:
    """Score each (model path, adapter path) on the test pairs; None when the test split holds no pairs."""
    from loraflow.tasks.evaluation.preference import preference_summary, score_pairs

    scores = {label: score_pairs(*model, test_path) for label, model in models.items() if model}
    if not any(scores.values()):
        return None
    summary = preference_summary(scores)
    path = Path(out_dir) / "eval" / "preference.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": summary, "scores": scores}, indent=1))
    get_run_logger().info("preference accuracy on %d held-out pairs: %s", summary["n"],
                          ", ".join(f"{k} {v:.3f}" for k, v in summary["accuracy"].items()))
    return summary
