"""Prefect flows: only the order of task calls."""
import json


def subflow_result(value):
    """A fresh copy of what a subflow returned, so the tasks it feeds do not record a `flow_run` input.

    Prefect links a subflow's return value (and its direct parts) to the subflow run by object identity; a task
    given one of those objects records a `flow_run` task input, which the default (V1) Prefect UI rejects ("Invalid
    TaskInputResponse"), showing "No task runs" for the whole flow run (PrefectHQ/prefect issue 18680). New objects
    with the same JSON content carry no such link; the subflow keeps its own run page and its tasks their caching.
    """
    return json.loads(json.dumps(value))
