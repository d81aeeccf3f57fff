"""deployments/prefect.yaml against a real `prefect server start`: `loraflow deploy` every pool, then run the data deployment on a worker."""
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.prefect_stack_support import client_settings, prefect_stack, wait_flow_run, worker_log

pytestmark = pytest.mark.slow

PROCESS = {"finetune", "data", "evaluate", "sweep", "promote", "rollback", "retrain-from-feedback", "monitor"}


@pytest.fixture(scope="module")
def stack(request):
    return prefect_stack(request.config)


@pytest.fixture(scope="module")
def deployments(stack) -> dict:
    from prefect.client.orchestration import get_client

    with client_settings(stack), get_client(sync_client=True) as client:
        found = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
        automations = client.read_automations()
    return {"by_name": {d.name: d for d in found}, "flows": flows, "automations": automations}


def test_every_deployment_lands_in_its_work_pool_with_pull_steps(deployments):
    by_name = deployments["by_name"]
    assert set(by_name) == PROCESS | {"finetune-docker", "retrain-from-feedback-docker", "finetune-k8s", "retrain-from-feedback-k8s"}
    for name in PROCESS:
        assert by_name[name].work_pool_name == "loraflow-process", name
        assert by_name[name].pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    for name, pool in (("finetune-docker", "loraflow-docker"), ("finetune-k8s", "loraflow-k8s")):
        deployment = by_name[name]
        assert deployment.work_pool_name == pool
        assert deployment.job_variables["image"] == "loraflow-worker:latest"
        assert deployment.job_variables["env"]["LORAFLOW_HOME"] == "/data/loraflow"
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}]
    assert deployments["flows"][by_name["retrain-from-feedback"].flow_id] == "retrain-from-feedback"


def test_the_finetune_run_form_puts_common_settings_first_and_runs_the_example_with_no_edits(deployments):
    from loraflow.tasks.common.config_files import load_config

    schema = deployments["by_name"]["finetune"].parameter_openapi_schema
    fields = sorted(schema["properties"].items(), key=lambda kv: kv[1]["position"])
    assert [name for name, _ in fields] == ["config_path", "input_path", "out_dir", "base_model", "max_steps", "overrides"]
    assert not schema.get("required")  # every field has a default: Run with no edits is valid
    assert all(field["description"] and "anyOf" not in field for _, field in fields)  # help text, no "type None" variants
    assert "dotted.key=value" in schema["properties"]["overrides"]["description"]
    example = load_config(REPO / schema["properties"]["config_path"]["default"])  # what a run with no edits trains on
    assert example.task_card.name != "my-task" and Path(example.data.path).is_file()
    assert example.task_card.success_criteria[0].metric == "json_field_score" and example.task_card.fields
    for name in PROCESS:  # every form: a few described inputs, no whole-config object
        properties = deployments["by_name"][name].parameter_openapi_schema["properties"]
        assert len(properties) <= 10 and "config" not in properties and all(f.get("description") for f in properties.values()), name
    retrain = deployments["by_name"]["retrain-from-feedback"]
    assert retrain.parameters == {"config_path": "examples/quickstart/pipeline.yaml"}
    assert "held out" in retrain.parameter_openapi_schema["properties"]["feedback_eval_share"]["description"]


def test_retraining_is_scheduled_but_inactive_and_monitoring_active(deployments):
    [retrain] = deployments["by_name"]["retrain-from-feedback"].schedules
    assert (retrain.schedule.cron, retrain.active) == ("0 3 * * 1", False)
    [monitor] = deployments["by_name"]["monitor"].schedules
    assert (monitor.schedule.cron, monitor.active) == ("0 6 * * *", True)
    [trigger] = [a for a in deployments["automations"] if "retrain-from-feedback" in a.name]
    assert trigger.trigger.expect == {"loraflow.feedback.threshold_reached"}
    assert trigger.actions[0].parameters == {"batch_id": "{{ event.payload.batch_id }}"}


def test_the_data_deployment_runs_to_completion_on_a_process_worker(stack, tmp_path):
    from prefect.deployments import run_deployment

    out = tmp_path / "data-run"
    with client_settings(stack):  # the Run form's parameters: a config file and a run folder
        started = run_deployment("data/data", parameters={"config_path": str(REPO / "examples" / "tiny" / "pipeline.yaml"),
                                                          "out_dir": str(out)}, timeout=0)
    run = wait_flow_run(stack, started.id, timeout=300)

    assert run.state.is_completed(), f"{run.state}\n{worker_log(stack)}"
    assert run.work_pool_name == "loraflow-process"
    for name in ("train", "val", "test", "quarantine", "review"):
        assert (out / "data" / f"{name}.jsonl").is_file(), name
    assert (out / "data" / "report.json").is_file()
