"""The links and UI hints a person is given: server pages when there are servers, else how to open the local stores."""
from loraflow.tasks.tracking.links import markdown_link, mlflow_model_version_url, mlflow_run_url, mlflow_ui_lines, prefect_ui_lines


def test_mlflow_links_lead_to_the_server_pages_or_to_the_ui_a_local_store_is_served_on(monkeypatch):
    monkeypatch.delenv("LORAFLOW_MLFLOW_UI_URL", raising=False)
    run = mlflow_run_url("http://mlflow:5000/", "3", "abc", "artifacts/eval/report.html")
    assert run == "http://mlflow:5000/#/experiments/3/runs/abc/artifacts/eval/report.html?workflowType=machine_learning"
    assert mlflow_model_version_url("https://m.example", "tickets v2", "7") == "https://m.example/#/models/tickets%20v2/versions/7?workflowType=machine_learning"
    page = "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert mlflow_run_url("sqlite:////tmp/mlflow.db", "3", "abc") == page  # what `mlflow ui` on the store serves
    assert markdown_link("MLflow run abc", None, "sqlite:////tmp/mlflow.db") == "MLflow run abc: `sqlite:////tmp/mlflow.db`"
    [local] = mlflow_ui_lines("sqlite:////tmp/mlflow.db", "3", "abc")
    assert "--backend-store-uri sqlite:////tmp/mlflow.db" in local and page in local
    # the address is configurable: a proxy in front of the server, or `mlflow ui --port 5055` on a local store
    monkeypatch.setenv("LORAFLOW_MLFLOW_UI_URL", "https://mlflow.example.org/")
    assert mlflow_run_url("http://mlflow:5000", "3", "abc") == "https://mlflow.example.org/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert mlflow_ui_lines("sqlite:////tmp/mlflow.db", "3", "abc")[0].count("https://mlflow.example.org/#/experiments/3") == 1


def test_the_prefect_hint_names_the_flow_run_page_and_the_ui_setting_another_port_needs():
    assert prefect_ui_lines("http://10.0.0.5:4242/api", None, "f-1") == ["http://10.0.0.5:4242/runs/flow-run/f-1"]
    start, other_port = prefect_ui_lines(None, "/home/u/.loraflow/prefect", "f-1")
    assert start.startswith("PREFECT_HOME=/home/u/.loraflow/prefect ") and "http://127.0.0.1:4200/runs/flow-run/f-1" in start
    assert "PREFECT_SERVER_UI_API_URL=http://127.0.0.1:P/api" in other_port and "--port P" in other_port


def test_run_links_name_only_the_report_pages_the_run_folder_has(tmp_path, monkeypatch):
    from loraflow.schemas.results import RegisteredModel, TrackingRun
    from loraflow.tasks.tracking.links import run_links_markdown

    monkeypatch.delenv("LORAFLOW_MLFLOW_UI_URL", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "report.html").write_text("<html></html>")
    registered = RegisteredModel(name="tickets", version="4", aliases=["champion"], model_uri="models:/tickets/4",
                                 source="s3://a/model", merged_path="/runs/x/model/merged")
    served = run_links_markdown(TrackingRun("http://m:5000", "r1", experiment_id="2"), str(tmp_path), registered)
    view = "?workflowType=machine_learning"  # MLflow 3.17 opens its GenAI view without it
    report = (tmp_path / "data" / "report.html").as_uri()
    assert served.splitlines() == [f"- [MLflow run r1](http://m:5000/#/experiments/2/runs/r1{view})",
                                   f"- [data report]({report}) ([in MLflow](http://m:5000/#/experiments/2/runs/r1/artifacts/data/report.html{view}))",
                                   f"- [model tickets version 4 (champion)](http://m:5000/#/models/tickets/versions/4{view})"]
    local = run_links_markdown(TrackingRun("sqlite:////x/mlflow.db", "r1", experiment_id="2"), str(tmp_path), None).splitlines()
    assert local[:2] == [f"- [MLflow run r1](http://127.0.0.1:5000/#/experiments/2/runs/r1{view})",
                         f"- [data report]({report}) ([in MLflow](http://127.0.0.1:5000/#/experiments/2/runs/r1/artifacts/data/report.html{view}))"]
    assert "mlflow ui --backend-store-uri sqlite:////x/mlflow.db" in local[-1]
