"""Built-in transformers backend: a dynamic batcher that generates concurrent requests together (continuous batching)."""
import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from loraflow.services.serving.decoding import Slot, run_batch
from loraflow.services.serving.loading import ModelBundle
from loraflow.services.serving.requests import Completion, Delta, Event, Failed, Finished, GenerationRequest, Started

log = logging.getLogger(__name__)


@dataclass
class RequestHandle:
    """A queued request; cancel() stops its generation at the next token (client went away)."""

    request: GenerationRequest
    on_event: Callable[[Event], None]
    enqueued_at: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop generating for this request."""
        self.cancelled.set()


class BatchingEngine:
    """Collects requests for up to batch_wait_ms (or max_batch_size) and generates each batch in one worker thread.

    Requests that arrive while a batch runs join it at the next token step, up to max_batch_size rows.
    """

    def __init__(self, bundle: ModelBundle, *, max_batch_size: int = 8, batch_wait_ms: float = 10.0, default_max_tokens: int = 256):
        self._bundle = bundle
        self._swap_lock = threading.Lock()
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.default_max_tokens = default_max_tokens
        self._queue: queue.Queue[RequestHandle | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # rows each recent batch started with, for /health and tests
        self.requests_served = 0
        self.joined_running = 0  # requests admitted into a batch already generating (continuous batching)
        self.decode_steps = 0
        self.decode_rows = 0  # rows summed over decode steps: decode_rows / decode_steps is the mean batch

    @property
    def bundle(self) -> ModelBundle:
        """The model new batches are generated with."""
        return self._bundle

    def swap(self, bundle: ModelBundle) -> ModelBundle:
        """Serve `bundle` from the next batch on; the batch in flight finishes on the old model."""
        with self._swap_lock:
            old, self._bundle = self._bundle, bundle
        log.info("serving %s (version %s), replacing %s", bundle.source, bundle.version, old.version)
        return old

    def start(self) -> "BatchingEngine":
        """Start the worker thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="loraflow-batcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight, fail queued requests, and stop the worker."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        while True:
            try:
                handle = self._queue.get_nowait()
            except queue.Empty:
                break
            if handle is not None:
                _emit(handle, Failed("the server is shutting down", 503))

    def submit(self, request: GenerationRequest, on_event: Callable[[Event], None]) -> RequestHandle:
        """Queue a request; on_event is called from the worker thread with each Event."""
        handle = RequestHandle(request, on_event)
        if self._stopping.is_set():
            _emit(handle, Failed("the server is shutting down", 503))
        else:
            self._queue.put(handle)
        return handle

    async def events(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Async stream of a request's events, ending with Finished or Failed; leaving early cancels it."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Event] = asyncio.Queue()
        handle = self.submit(request, lambda event: loop.call_soon_threadsafe(inbox.put_nowait, event))
        try:
            while True:
                event = await inbox.get()
                yield event
                if isinstance(event, (Finished, Failed)):
                    return
        finally:
            handle.cancel()

    def complete(self, request: GenerationRequest, timeout: float | None = None) -> Completion:
        """Blocking: generate one request (batched with whatever else is queued) and return the whole answer."""
        inbox: queue.Queue[Event] = queue.Queue()
        self.submit(request, inbox.put)
        parts, version = [], None
        while True:
            event = inbox.get(timeout=timeout)
            if isinstance(event, Started):
                version = event.model_version
            elif isinstance(event, Delta):
                parts.append(event.text)
            elif isinstance(event, Failed):
                raise ValueError(event.message)
            else:
                return Completion("".join(parts), event.finish_reason, event.prompt_tokens, event.completion_tokens, version)

    def _collect_batch(self) -> list[RequestHandle]:
        first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        deadline = first.enqueued_at + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            # The window counts from the first request's arrival: requests that queued during the previous
            # batch are taken at once, later ones only until the window closes.
            handle = self._take_waiting(deadline - time.monotonic())
            if handle is None:
                break
            batch.append(handle)
        return [h for h in batch if not h.cancelled.is_set()]

    def _take_waiting(self, timeout: float) -> RequestHandle | None:
        """The next queued request, waiting up to `timeout` s (not at all when <= 0); None when none came or the
        engine is stopping (the stop signal stays queued for the loop)."""
        try:
            handle = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if handle is None:
            self._queue.put(None)
        return handle

    def _admit(self, bundle: ModelBundle, rows_now: int, slots: list[Slot]) -> list[Slot]:
        """Waiting requests that join the running batch now; none once a swap has replaced its model."""
        joining: list[Slot] = []
        if self._bundle is not bundle or self._stopping.is_set():
            return joining
        while rows_now + len(joining) < self.max_batch_size:
            handle = self._take_waiting(0)
            if handle is None:
                break
            if not handle.cancelled.is_set():
                joining.append(Slot(handle.request, handle.on_event, handle.cancelled))
        self.joined_running += len(joining)
        self.requests_served += len(joining)
        slots.extend(joining)  # so a failure of the batch reaches them too
        return joining

    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect_batch()
            if not batch:
                continue
            with self._swap_lock:
                bundle = self._bundle
            slots = [Slot(h.request, h.on_event, h.cancelled) for h in batch]
            self.batch_sizes.append(len(slots))
            self.requests_served += len(slots)
            try:
                steps, rows = run_batch(bundle, slots, self.default_max_tokens, admit=lambda now: self._admit(bundle, now, slots))
                self.decode_steps += steps
                self.decode_rows += rows
            except Exception as error:  # a bug or device error must not kill the worker: fail this batch only
                log.exception("batch of %d failed", len(batch))
                for slot in slots:
                    if not slot.done:
                        slot.emit(Failed(f"generation failed: {error}", 500))


def _emit(handle: RequestHandle, event: Event) -> None:
    try:
        handle.on_event(event)
    except RuntimeError:  # the client's event loop is gone
        handle.cancel()
