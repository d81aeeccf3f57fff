"""Follow a registry alias: when `champion` moves, load the new version in the background and swap it in."""
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from loraflow.services.serving.engine import BatchingEngine
from loraflow.services.serving.loading import ModelBundle
from loraflow.services.serving.source import ModelRef, current_version, download_version

log = logging.getLogger(__name__)


class AliasWatcher:
    """Polls an alias every poll_seconds; a new version is downloaded and loaded off the request path, then swapped atomically.

    Requests in flight finish on the model their batch started with; the next batch uses the new one,
    so no request is dropped. A failed check or load keeps the current model and is retried next poll.
    """

    def __init__(self, ref: ModelRef, engine: BatchingEngine, load: Callable[[str, str], ModelBundle],
                 cache_dir: str | Path, poll_seconds: float):
        if ref.alias is None:
            raise ValueError(f"{ref.uri} names no alias to follow")
        self.ref = ref
        self.engine = engine
        self.load = load
        self.cache_dir = cache_dir
        self.poll_seconds = poll_seconds
        self.swaps = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> bool:
        """Swap in the alias's version if it differs from the one served; True when a swap happened."""
        version = current_version(self.ref)
        if version == self.engine.bundle.version:
            return False
        log.info("%s moved to version %s; loading it in the background", self.ref.uri, version)
        path = download_version(self.ref.name, version, self.cache_dir)
        self.engine.swap(self.load(path, version))
        self.swaps += 1
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
                self.last_error = None
            except Exception as error:  # registry down or a broken version: keep serving the current model
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("reload check of %s failed, still serving version %s: %s",
                            self.ref.uri, self.engine.bundle.version, self.last_error)

    def start(self) -> "AliasWatcher":
        """Start polling in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loraflow-alias-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (a load in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
