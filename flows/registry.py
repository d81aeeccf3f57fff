"""Move the champion alias by hand from the Prefect UI: promote a registered version, or roll back."""
from prefect import flow

from loraflow.tasks.steps import deploy


@flow(name="promote")
def promote(version: str, reason: str = "promoted by hand from Prefect", model_name: str = "", tracking_uri: str = "") -> dict:
    """Make a registered model version the champion (servers watching the alias reload it).

    Args:
        version: The registered model version to promote (a number, as the MLflow model page lists it).
        reason: Why; recorded on the version and in the model's champion history.
        model_name: Registered model name; empty: the only registered model.
        tracking_uri: MLflow tracking URI; empty: $MLFLOW_TRACKING_URI or the embedded store.
    """
    return deploy.promote_version(model_name=model_name or None, version=version, reason=reason,
                                  tracking_uri=tracking_uri or None).to_dict()


@flow(name="rollback")
def rollback(reason: str = "rolled back by hand from Prefect", to_version: str = "", model_name: str = "",
             tracking_uri: str = "") -> dict:
    """Point the champion back at an earlier version (default: the champion before the current one).

    Args:
        reason: Why; recorded on both versions and in the champion history.
        to_version: The version to restore; empty: the champion before the current one.
        model_name: Registered model name; empty: the only registered model.
        tracking_uri: MLflow tracking URI; empty: $MLFLOW_TRACKING_URI or the embedded store.
    """
    return deploy.rollback_champion(model_name=model_name or None, to_version=to_version or None, reason=reason,
                                    tracking_uri=tracking_uri or None).to_dict()
