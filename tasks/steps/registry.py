"""Prefect wrappers for moving the `champion` alias by hand: promote a version, roll back to an earlier one."""
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.tasks.steps import not_user_error

REGISTRY_TASK = dict(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)


def _record(event: dict, name: str) -> dict:
    get_run_logger().info("%s: %s champion is now version %s (was %s): %s", event["action"], name, event["version"],
                          event["previous"], event["reason"])
    create_markdown_artifact(key=f"champion-{event['action']}", description="Champion alias moved", markdown=(
        f"**{event['action']}** `{name}`: champion v{event['previous']} → **v{event['version']}** at {event['at']}\n\n"
        f"Reason: {event['reason']}"))
    return {**event, "name": name}


@task(name="promote-version", **REGISTRY_TASK)
def promote_version(model_name: str | None, version: str, reason: str, tracking_uri: str | None) -> dict:
    """Point the champion alias at a registered version (model_name None: the only registered model)."""
    from loraflow.tasks.deploy.registry import only_model_name, promote

    name = model_name or only_model_name(tracking_uri=tracking_uri)
    return _record(promote(name, version, reason, tracking_uri=tracking_uri), name)


@task(name="rollback-champion", **REGISTRY_TASK)
def rollback_champion(model_name: str | None, to_version: str | None, reason: str, tracking_uri: str | None) -> dict:
    """Move the champion alias back to to_version, or to the champion before the current one."""
    from loraflow.tasks.deploy.registry import only_model_name, rollback

    name = model_name or only_model_name(tracking_uri=tracking_uri)
    return _record(rollback(name, to_version, reason, tracking_uri=tracking_uri), name)
