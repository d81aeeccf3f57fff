"""The data flow on every engine: the in-memory path, the streaming path on the local engine and on a 2-worker Dask
cluster give the same splits and report (conservation checked), and a rerun is served from Prefect's cache."""
import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_finetune_flow import _task_states

pytestmark = pytest.mark.slow

STAGES = ("ingest", "validate", "clean", "split", "data-report")


def _config(**data):
    from loraflow.tasks.common.config_files import load_config

    config = load_config(REPO / "examples" / "tiny" / "pipeline.yaml")
    return config.model_copy(update={"data": config.data.model_copy(update=data)})


def _report(out: Path) -> dict:
    report = json.loads((out / "data" / "report.json").read_text())
    report.pop("files")
    return report


def test_data_flow_gives_one_report_on_every_engine_and_caches_reruns(prefect_harness, tmp_path):
    pytest.importorskip("distributed")
    from loraflow.flows.data import prepare_data

    variants = {"memory": _config(streaming="off"), "stream": _config(streaming="on", partition_mb=0.01),
                "dask": _config(engine="dask", workers=2, partition_mb=0.01)}
    results = {}
    for name, config in variants.items():
        out = tmp_path / name
        first = prepare_data(config=config, out_dir=str(out), return_state=True)
        results[name] = first.result()
        assert results[name].report.markdown
        plan = json.loads((out / "data" / "report.json").read_text())
        assert plan["conservation"]["holds"]
        again = prepare_data(config=config, out_dir=str(out), return_state=True)
        states = _task_states({str(again.state_details.flow_run_id)}, expect=STAGES)
        for stage in STAGES:
            assert states[stage] == "Cached", (name, stage, states)
    assert results["memory"].splits.streaming is None
    assert results["stream"].splits.streaming.engine == "local"
    assert results["dask"].splits.streaming.engine == "dask"
    reports = {name: _report(tmp_path / name) for name in variants}
    assert reports["memory"] == reports["stream"] == reports["dask"]
    for split in ("train", "val", "test"):
        files = {(tmp_path / name / "data" / f"{split}.jsonl").read_bytes() for name in variants}
        assert len(files) == 1, split
