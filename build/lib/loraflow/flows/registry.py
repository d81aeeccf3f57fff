"""Move the champion alias by hand from the Prefect UI: promote a registered version, or roll back."""
from prefect import flow

from loraflow.tasks.steps import deploy


@flow(name="promote")
def promote(version: str, reason: str = "promoted by hand from Prefect", model_name: str | None = None,
            tracking_uri: str | None = None) -> dict:
    """Make a registered model version the champion (servers watching the alias reload it).

    Args:
        version: the registered model version to promote.
        reason: why; recorded on the version and in the model's champion history.
        model_name: registered model name; default the only registered model.
        tracking_uri: MLflow tracking URI; default $MLFLOW_TRACKING_URI or the embedded store.
    """
    return deploy.promote_version(model_name, version, reason, tracking_uri).to_dict()


@flow(name="rollback")
def rollback(reason: str = "rolled back by hand from Prefect", to_version: str | None = None, model_name: str | None = None,
             tracking_uri: str | None = None) -> dict:
    """Point the champion back at an earlier version (default: the champion before the current one).

    Args:
        reason: why; recorded on both versions and in the champion history.
        to_version: the version to restore; default the previous champion.
        model_name: registered model name; default the only registered model.
        tracking_uri: MLflow tracking URI; default $MLFLOW_TRACKING_URI or the embedded store.
    """
    return deploy.rollback_champion(model_name, to_version, reason, tracking_uri).to_dict()
