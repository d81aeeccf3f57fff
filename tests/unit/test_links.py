"""The links and UI hints a person is given: server pages when there are servers, else how to open the local stores."""
from loraflow.tasks.tracking.links import markdown_link, mlflow_model_version_url, mlflow_run_url, mlflow_ui_lines, prefect_ui_lines


def test_mlflow_links_lead_to_the_server_pages_and_stay_paths_for_a_local_store():
    run = mlflow_run_url("http://mlflow:5000/", "3", "abc", "artifacts/eval/report.html")
    assert run == "http://mlflow:5000/#/experiments/3/runs/abc/artifacts/eval/report.html?workflowType=machine_learning"
    assert mlflow_model_version_url("https://m.example", "tickets v2", "7") == "https://m.example/#/models/tickets%20v2/versions/7?workflowType=machine_learning"
    assert mlflow_run_url("sqlite:////tmp/mlflow.db", "3", "abc") is None
    assert markdown_link("MLflow run abc", None, "sqlite:////tmp/mlflow.db") == "MLflow run abc: `sqlite:////tmp/mlflow.db`"
    [local] = mlflow_ui_lines("sqlite:////tmp/mlflow.db", "3", "abc")
    assert "--backend-store-uri sqlite:////tmp/mlflow.db" in local and "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning" in local


def test_the_prefect_hint_names_the_flow_run_page_and_the_ui_setting_another_port_needs():
    assert prefect_ui_lines("http://10.0.0.5:4242/api", None, "f-1") == ["http://10.0.0.5:4242/runs/flow-run/f-1"]
    start, other_port = prefect_ui_lines(None, "/home/u/.loraflow/prefect", "f-1")
    assert start.startswith("PREFECT_HOME=/home/u/.loraflow/prefect ") and "http://127.0.0.1:4200/runs/flow-run/f-1" in start
    assert "PREFECT_SERVER_UI_API_URL=http://127.0.0.1:P/api" in other_port and "--port P" in other_port


def test_run_links_name_only_the_report_pages_the_run_folder_has(tmp_path):
    from loraflow.schemas.results import RegisteredModel, TrackingRun
    from loraflow.tasks.tracking.links import run_links_markdown

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "report.html").write_text("<html></html>")
    registered = RegisteredModel(name="tickets", version="4", aliases=["champion"], model_uri="models:/tickets/4",
                                 source="s3://a/model", merged_path="/runs/x/model/merged")
    served = run_links_markdown(TrackingRun("http://m:5000", "r1", experiment_id="2"), str(tmp_path), registered)
    view = "?workflowType=machine_learning"  # MLflow 3.17 opens its GenAI view without it
    assert served.splitlines() == [f"- [MLflow run r1](http://m:5000/#/experiments/2/runs/r1{view})",
                                   f"- [data report](http://m:5000/#/experiments/2/runs/r1/artifacts/data/report.html{view})",
                                   f"- [model tickets version 4 (champion)](http://m:5000/#/models/tickets/versions/4{view})"]
    local = run_links_markdown(TrackingRun("sqlite:////x/mlflow.db", "r1", experiment_id="2"), str(tmp_path), None)
    assert local.splitlines() == ["- MLflow run r1: `sqlite:////x/mlflow.db`", f"- data report: `{tmp_path / 'data' / 'report.html'}`"]
