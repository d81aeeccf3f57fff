"""The thin Prefect `@task` wrappers, one module per stage group; the only place in tasks/ that imports prefect."""
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.lost_signals import redeliver_dropped_interrupts

# A flow run by a worker does not start from the CLI: a cancellation's SIGTERM must not be lost there either.
redeliver_dropped_interrupts()


def not_user_error(task, task_run, state) -> bool:
    """Retry transient failures only: a LoraflowError will fail the same way again."""
    try:
        state.result()
    except LoraflowError:
        return False
    except Exception:
        return True
    return False
