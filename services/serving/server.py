"""Start serving: pick the backend, load the model in the background, follow the alias, run uvicorn."""
import contextlib
import logging
import threading
from pathlib import Path
from typing import Callable

from fastapi import FastAPI

from loraflow.schemas.config.serve import ServeConfig
from loraflow.services.serving.app import ServerState, create_app
from loraflow.services.serving.engine import BatchingEngine
from loraflow.tasks.common.errors import LoraflowError
from loraflow.services.serving.loading import ModelBundle, find_model_folders, load_bundle
from loraflow.services.serving.source import current_version, parse_model_uri, resolve_model, served_model_name

log = logging.getLogger(__name__)


def choose_backend(config: ServeConfig) -> str:
    """`vllm` or `builtin`: auto takes vLLM where it imports."""
    from loraflow.services.serving.vllm_backend import vllm_available

    if config.backend == "builtin" or (config.backend == "auto" and not vllm_available()):
        return "builtin"
    if not vllm_available():
        raise LoraflowError("serve.backend is vllm but vLLM is not installed: pip install vllm on a GPU machine, or use --backend builtin")
    return "vllm"


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from loraflow.tasks.common.settings import loraflow_home

    return loraflow_home() / "serving"


def load_into(state: ServerState, config: ServeConfig, model_uri: str, cache_dir: str | Path | None = None,
              on_load_error: Callable[[str], None] | None = None) -> None:
    """Resolve and load the model, start the engine (and the alias watcher); failures land in state.load_error."""
    cache = _cache_dir(cache_dir)

    def load(path: str, version: str | None) -> ModelBundle:
        return load_bundle(path, device=config.device, dtype=config.dtype, source=model_uri, version=version)

    try:
        resolved = resolve_model(model_uri, cache)
        engine = BatchingEngine(load(resolved.path, resolved.version), max_batch_size=config.max_batch_size,
                                batch_wait_ms=config.batch_wait_ms, default_max_tokens=config.max_new_tokens).start()
    except Exception as error:  # reported by /health (503) so an orchestrator restarts the server
        log.error("loading %s failed: %s: %s", model_uri, type(error).__name__, error)
        log.debug("loading %s failed", model_uri, exc_info=True)  # the traceback, for --log-level debug
        state.load_error = f"{type(error).__name__}: {error}"
        if on_load_error is not None:
            on_load_error(state.load_error)
        return
    state.engine = engine
    ref = parse_model_uri(model_uri)
    if ref.alias is not None and config.reload_poll_seconds > 0:
        from loraflow.services.serving.reload import AliasWatcher

        state.extras["watcher"] = AliasWatcher(ref, engine, load, cache, config.reload_poll_seconds).start()
    log.info("serving %s (version %s) as %s", model_uri, resolved.version, state.served_model_name)


def build_app(config: ServeConfig, model_uri: str, cache_dir: str | Path | None = None,
              on_load_error: Callable[[str], None] | None = None) -> FastAPI:
    """The built-in backend's app; the model loads in a background thread on start-up so /health answers at once."""
    state = ServerState(served_model_name=config.served_model_name or served_model_name(model_uri))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        threading.Thread(target=load_into, args=(state, config, model_uri, cache_dir, on_load_error),
                         name="loraflow-loader", daemon=True).start()
        yield
        if "watcher" in state.extras:
            state.extras["watcher"].stop()
        if state.engine is not None:
            state.engine.stop()

    return create_app(state, lifespan=lifespan, max_body_bytes=config.max_body_bytes)


def check_model_source(model_uri: str) -> None:
    """Fail before the server starts on a model that cannot load: a missing folder, one without weights, an unknown alias."""
    ref = parse_model_uri(model_uri)
    if ref.is_registry:
        current_version(ref)
    else:
        find_model_folders(resolve_model(model_uri).path)


def run_server(config: ServeConfig, model_uri: str) -> int:
    """Serve until interrupted; returns the process exit code. A model that fails to load ends the process (exit 1)."""
    check_model_source(model_uri)
    if choose_backend(config) == "vllm":
        from loraflow.services.serving.vllm_backend import run_vllm

        return run_vllm(config, model_uri)
    import uvicorn

    failures: list[str] = []

    def stop_serving(error: str) -> None:  # a server that can never answer should not look alive to its supervisor
        failures.append(error)
        server.should_exit = True

    server = uvicorn.Server(uvicorn.Config(build_app(config, model_uri, on_load_error=stop_serving), host=config.host,
                                           port=config.port, log_level="info"))
    server.run()
    if failures:
        raise LoraflowError(f"could not load the model {model_uri} ({failures[0]}); check the folder or registry version "
                            "with `loraflow versions`, then start the server again")
    return 0
