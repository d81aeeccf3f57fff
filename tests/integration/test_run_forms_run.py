"""Each deployment's flow run with its Run form's defaults, on the tiny example: only the config file and folders differ.

The forms' own defaults name the quickstart example (SmolLM2, minutes of CPU training); here `config_path` names the tiny
example instead and the folders point into a temporary directory, every other input keeps its default.
"""
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY = str(REPO / "examples" / "tiny" / "pipeline.yaml")


@pytest.fixture(scope="module", autouse=True)
def fresh_default_stores(tmp_path_factory):
    """Default stores of this module's own, as on a fresh clone: the forms' empty fields mean "the default store",
    and promote/rollback's empty model_name "the only registered model", which the session's shared store (other
    tests register their models there) does not have."""
    home = tmp_path_factory.mktemp("forms-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LORAFLOW_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        patch.delenv("LORAFLOW_FEEDBACK_DATABASE_URL", raising=False)  # default: $LORAFLOW_HOME/feedback.db
        yield home


@pytest.fixture(scope="module")
def deployed(prefect_harness, tmp_path_factory) -> dict:
    """The finetune form's run: the tiny model trained, evaluated, registered."""
    from loraflow.flows.finetune import finetune_from_file

    out = tmp_path_factory.mktemp("forms") / "deployed"
    return {"out": out, "run": finetune_from_file(config_path=TINY, out_dir=str(out), overrides=["task_card.name=run-forms"])}


def test_the_data_form_prepares_the_example(prefect_harness, tmp_path):
    from loraflow.flows.data import prepare_data_from_file

    result = prepare_data_from_file(config_path=TINY, out_dir=str(tmp_path / "data-run"))
    assert result["splits"]["train"].endswith("train.jsonl") and (tmp_path / "data-run" / "data" / "report.html").is_file()


def test_the_evaluate_promote_rollback_monitor_and_retrain_forms_run_with_their_defaults(deployed, tmp_path):
    from mlflow import MlflowClient

    from loraflow.flows.evaluate import evaluate_from_file
    from loraflow.flows.monitor import monitor
    from loraflow.flows.registry import promote, rollback
    from loraflow.flows.retrain import retrain_from_feedback

    run = deployed["run"]
    assert run["outcome"]["registered_model"]["version"] == "1"
    evaluated = evaluate_from_file(model=str(deployed["out"]), config_path=TINY, out_dir=str(tmp_path / "eval"))
    assert (tmp_path / "eval" / "eval" / "metrics_model.json").is_file() and "json_field_accuracy" in evaluated["metrics"]

    assert promote(version="1")["version"] == "1"  # the only registered model, the default store
    client = MlflowClient(run["mlflow_tracking_uri"])
    first = client.get_model_version("run-forms", "1")
    client.create_model_version("run-forms", first.source, run_id=first.run_id)  # a second version to move between
    assert promote(version="2")["previous"] == "1"
    assert rollback()["version"] == "1"  # default: back to the champion before the current one

    monitored = monitor(config_path=TINY, overrides=["task_card.name=run-forms"])
    assert monitored["champion"]["version"] == "1" and "test" in monitored["metrics"]
    assert retrain_from_feedback(config_path=TINY) == {"batch_id": None, "trained": False, "reason": "no pending feedback"}


def test_the_sweep_form_runs_its_default_grid(prefect_harness, tmp_path):
    import json

    from loraflow.flows.sweep import sweep_from_file

    result = sweep_from_file(config_path=TINY, out_dir=str(tmp_path / "sweep"))
    assert [t["overrides"] for t in result["trials"]] == [["train.learning_rate=1e-4"], ["train.learning_rate=2e-4"]]
    assert result["best"] and json.loads((tmp_path / "sweep" / "sweep.json").read_text())["best"]["name"] == result["best"]["name"]
