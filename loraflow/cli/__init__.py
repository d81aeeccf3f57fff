"""The `loraflow` command: each module in this package adds one subcommand group via `register(subparsers)`."""
import argparse
import importlib
import pkgutil
import signal
import sys

from loraflow.tasks.common.lost_signals import redeliver_dropped_interrupts
from loraflow.tasks.common.settings import configure_environment


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand module of this package registered."""
    parser = argparse.ArgumentParser(prog="loraflow", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):  # skips __main__
            importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand, and turn user errors into one line and an exit code."""
    configure_environment()
    args = build_parser().parse_args(argv)
    from loraflow.tasks.common.errors import LoraflowError

    # One signal policy, whatever the CLI inherited: a background job of a non-interactive shell (`cmd &` in a script,
    # CI) starts with SIGINT ignored, and Python then keeps ignoring it, so a SIGINT to the PID was silently lost.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)  # a flow swaps in Prefect's own SIGTERM handler while it runs
    redeliver_dropped_interrupts()  # one that lands in a garbage-collector callback would otherwise be lost
    try:
        return int(args.handler(args) or 0)
    except LoraflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # a path no check above foresaw: still one line naming it, not a traceback
        where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        print(f"error: {where + ': ' if where else ''}{error.strerror or error}; check the path and its permissions",
              file=sys.stderr)
        return 1
    except BaseException as error:  # Ctrl-C, or SIGTERM: ours outside a flow, Prefect's TerminationSignal inside one
        terminated = getattr(error, "signal", None) == signal.SIGTERM
        if not terminated and not isinstance(error, KeyboardInterrupt):
            raise
        print(f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130


def entry() -> None:
    """The `loraflow` program: main(), then an exit that does not wait for the interpreter's teardown after a signal."""
    code = main()
    if code in (130, 143):
        exit_now(code)
    sys.exit(code)


DRAIN_S = 2.0  # per Prefect worker: the run's last log lines and events, if they can be sent that quickly


def exit_now(code: int) -> None:
    """End an interrupted CLI within seconds: send what is queued for Prefect (bounded), run the atexit handlers, then
    skip the interpreter's teardown.

    The run is already marked (its Prefect state and MLflow run ended in the flow's crash handling). Python's own exit
    waited without a bound for Prefect's log and event workers to drain, then ran a full garbage collection over every
    module of torch, transformers, prefect...: 10 to 60 s on a loaded 2-core machine. The atexit handlers still run
    (logging is flushed, the temporary Prefect server stopped).
    """
    import atexit
    import os

    for module, name in (("prefect.logging.handlers", "APILogWorker"), ("prefect.events.worker", "EventsWorker")):
        worker = getattr(sys.modules.get(module), name, None)
        if worker is not None:
            try:
                worker.drain_all(timeout=DRAIN_S)
            except Exception:  # noqa: BLE001 - a log line that cannot be sent must not keep the process alive
                pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a flow: unwinds like Ctrl-C, so `finally` blocks and child-process cleanup still run."""

    signal = signal.SIGTERM


def _terminated(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    entry()
