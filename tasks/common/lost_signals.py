"""Ctrl-C and SIGTERM that Python would drop: delivered again, so a run told to stop does stop.

A signal handler that raises (Python's own for SIGINT, Prefect's for SIGTERM inside a flow, the CLI's outside one) runs
in the main thread between two bytecodes of whatever runs there. When that happens to be a garbage-collector or weakref
callback (a `__del__`, SQLAlchemy's class-registry cleanup...), Python cannot propagate the exception: it prints
"Exception ignored in: ..." through `sys.unraisablehook` and carries on, and the run goes on as if nothing was sent.
The hook installed here recognises such a dropped interrupt and sends the same signal again from a helper thread a
moment later, when the main thread has left the callback; a redelivery that lands in a callback again is caught the
same way. Nothing changes for signals that arrive anywhere else, and no signal handler is replaced (Prefect checks
that its own is installed before it acknowledges a cancellation).
"""
import os
import signal
import sys
import threading

REDELIVERY_DELAY_S = 0.05
_installed = False


def interrupt_signal(error: BaseException | None) -> int | None:
    """The signal behind an interrupt exception (KeyboardInterrupt: SIGINT; one with a `signal` attribute, such as
    Prefect's TerminationSignal or the CLI's Terminated: that signal), else None."""
    if error is None or isinstance(error, Exception):
        return None  # an ordinary error in a callback is not an interrupt; it stays reported and ignored
    number = getattr(error, "signal", None)
    if isinstance(number, int):  # signal.Signals is an int too
        return int(number)
    return int(signal.SIGINT) if isinstance(error, KeyboardInterrupt) else None


def redeliver_dropped_interrupts() -> None:
    """Install the hook (once per process; later calls do nothing)."""
    global _installed
    if _installed:
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        number = interrupt_signal(unraisable.exc_value)
        if number is not None:
            sys.stderr.write(f"loraflow: signal {signal.Signals(number).name} arrived inside a cleanup callback "
                             "and was dropped by Python; sending it again\n")
            timer = threading.Timer(REDELIVERY_DELAY_S, os.kill, (os.getpid(), number))
            timer.daemon = True
            timer.start()
            return  # the line above says it all: Python's "Exception ignored ... KeyboardInterrupt" traceback would not
        previous(unraisable)

    sys.unraisablehook = hook
    _installed = True
