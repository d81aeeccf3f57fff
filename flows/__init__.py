"""Prefect flows: only the order of task calls.

Steps inside a flow hand each other typed results (loraflow.schemas.results); a flow that people start (from the UI,
by schedule or through the API) returns plain JSON, which the Prefect UI shows and an API caller can read anywhere.
"""
import pickle

# What a deployment's Run form runs with no edits: the bundled example (paths relative to the repository root).
DEFAULT_CONFIG = "examples/quickstart/pipeline.yaml"
# Where the finetune deployment writes by default: what the evaluate form scores unless told otherwise.
DEPLOYED_RUN = "runs/deployed"


def subflow_result(value):
    """A fresh copy of what a subflow returned, so the tasks it feeds do not record a `flow_run` input.

    Prefect links a subflow's return value (and its direct parts) to the subflow run by object identity; a task
    given one of those objects records a `flow_run` task input, which the default (V1) Prefect UI rejects ("Invalid
    TaskInputResponse"), showing "No task runs" for the whole flow run (PrefectHQ/prefect issue 18680). A pickle
    round trip builds new objects (strings included) of the same types and content; the subflow keeps its own run page
    and its tasks their caching.
    """
    return pickle.loads(pickle.dumps(value))
