"""Where the streaming data stages run their partition work: in this process (`local`) or on a Dask cluster (`dask`).

Stage code hands an engine a function and a list of items (file partitions, LSH bands); the engine returns the
results in item order. Functions and their results are plain, picklable values; big data moves through files in
the run folder, so a cluster's workers must see the run folder at the same path (a shared volume).

Which cluster: `data.dask_address` (or the LORAFLOW_DASK_ADDRESS environment variable), e.g. tcp://scheduler:8786;
without one, a local cluster of `data.workers` worker processes is started once per process and reused.
"""
import atexit
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from loraflow.tasks.common.errors import LoraflowError

_CLUSTERS: dict[Any, Any] = {}


class LocalEngine:
    """Partition work in this process, one item after another."""

    name = "local"
    workers = 1

    def map(self, fn: Callable, items: Sequence, **kwargs) -> list:
        return [fn(item, **kwargs) for item in items]


class DaskEngine:
    """Partition work as Dask tasks, one per item, on the cluster the client is connected to."""

    name = "dask"

    def __init__(self, client):
        self.client = client
        self.workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))

    def map(self, fn: Callable, items: Sequence, **kwargs) -> list:
        if not items:
            return []
        futures = self.client.map(partial(fn, **kwargs), list(items), pure=False)
        return self.client.gather(futures)


def dask_client(address: str | None, workers: int):
    """A Dask client for the scheduler at `address`, or for a local cluster of `workers` processes (kept for reuse)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise LoraflowError("data.engine=dask needs the dask[distributed] package; install it (pip install "
                            "'dask[distributed]') or set data.engine=local.") from None
    key = address or ("local", workers)
    client = _CLUSTERS.get(key)
    if client is not None and client.status == "running":
        return client
    if address:
        try:
            client = Client(address, timeout=30)
        except OSError as err:
            raise LoraflowError(f"cannot reach the Dask scheduler at {address} ({err}); start it (docker compose up "
                                "dask-scheduler dask-worker) or fix data.dask_address / LORAFLOW_DASK_ADDRESS.") from None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit=0)
        client = Client(cluster)
        atexit.register(_close, client, cluster)
    _CLUSTERS[key] = client
    return client


def _close(client, cluster) -> None:
    import logging

    # At exit other logging handlers (Prefect's) may be gone already: the cluster closes quietly.
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        client.close()
        cluster.close()
    except Exception:  # interpreter shutdown: nothing left to report to
        pass


def engine_for(engine: str, workers: int = 2, address: str | None = None):
    """The engine named by data.engine (`local` or `dask`)."""
    if engine == "local":
        return LocalEngine()
    if engine == "dask":
        return DaskEngine(dask_client(address or os.environ.get("LORAFLOW_DASK_ADDRESS") or None, workers))
    raise LoraflowError(f"data.engine={engine!r} is not known; use local or dask.")
