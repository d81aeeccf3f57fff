"""The production path on PostgreSQL: Prefect server's database and MLflow's backend store (tracking + registry)."""
import os
import sys
import uuid

import pytest
import sqlalchemy

from tests.integration.prefect_stack_support import free_port, start, stop, wait_http

from loraflow.schemas.results import TrackingRun

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def database():
    """A fresh database on the test server (dropped afterwards); yields (sqlalchemy URL base, database name)."""
    base = os.environ["LORAFLOW_TEST_POSTGRES_URL"]
    name = f"loraflow_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(base)
    yield url, name
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def test_mlflow_registry_on_postgres_promotes_and_rolls_back(database, tiny_model_path, tmp_path):
    from mlflow import MlflowClient

    from loraflow.tasks.tracking import runs as tracking
    from loraflow.tasks.deploy.registry import champion_version, promote, register_model, rollback

    url, name = database
    uri = url.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    run_id = tracking.start_run(uri, "pg-test", "pg-run", {"lora.r": "8"}, {"git.commit": "test"},
                                {"success_criteria": [{"metric": "rougeL"}]}, {"lora": {"r": 8}})
    tracking.log_metrics(TrackingRun(uri, run_id), {"train_loss": 1.5}, step=1)
    first = register_model(str(tiny_model_path), run_id, "pg-model", {"data.hash": "abc"}, tracking_uri=uri)
    second = register_model(str(tiny_model_path), run_id, "pg-model", {"data.hash": "def"}, tracking_uri=uri)
    promote("pg-model", first["version"], "first champion", tracking_uri=uri)
    promote("pg-model", second["version"], "better", tracking_uri=uri)
    assert champion_version("pg-model", tracking_uri=uri) == str(second["version"])
    rollback("pg-model", None, "regression in production", tracking_uri=uri)
    assert champion_version("pg-model", tracking_uri=uri) == str(first["version"])
    client = MlflowClient(uri, registry_uri=uri)
    assert client.get_run(run_id).data.params["lora.r"] == "8"
    assert client.get_model_version("pg-model", str(second["version"])).tags["data.hash"] == "def"


def test_prefect_server_on_postgres_records_a_flow_run(database, tmp_path):
    url, name = database
    db_url = url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_DATABASE_CONNECTION_URL": db_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": ""}
    server = start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                   env, tmp_path / "server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 180, server)
        api = f"http://127.0.0.1:{port}/api"
        code = ("from prefect import flow, task\n"
                "@task\ndef add(a, b): return a + b\n"
                "@flow(name='pg-smoke')\ndef smoke(): return add(2, 3)\n"
                "print('RESULT', smoke())\n")
        import subprocess

        result = subprocess.run([sys.executable, "-c", code], env={**env, "PREFECT_API_URL": api}, capture_output=True,
                                text=True, timeout=300)
        assert "RESULT 5" in result.stdout, result.stderr[-2000:]
        engine = sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg2", database=name))
        with engine.connect() as conn:
            states = conn.execute(sqlalchemy.text(
                "SELECT fr.state_name FROM flow_run fr JOIN flow f ON f.id = fr.flow_id WHERE f.name = 'pg-smoke'")).all()
        engine.dispose()
        assert states == [("Completed",)]
    finally:
        stop(server)
