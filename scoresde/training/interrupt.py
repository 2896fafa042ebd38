"""Ctrl-C and ``kill`` between steps: a loop finishes the step it is in, saves, and stops with a clear message.

:func:`deferred_interrupt` turns SIGINT and SIGTERM into a request that the loop reads between steps, so the state
it saves is never half-updated; a second signal interrupts at once (the default behaviour).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint.

    Attributes:
        step: The step the run stopped at.
        checkpoint: The checkpoint written at that step (None when the trainer writes no files).
    """

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted at step {step}" + (f"; saved {checkpoint}" if checkpoint else ""))
        self.step, self.checkpoint = step, checkpoint


@dataclass
class InterruptRequest:
    """Set by the signal handler; read by the loop between steps."""

    signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None


@contextmanager
def deferred_interrupt() -> Iterator[InterruptRequest]:
    """Within the block, the first SIGINT/SIGTERM only sets ``request.signal``; the second raises KeyboardInterrupt.

    Outside the main thread (where Python cannot install signal handlers) the request is never set and signals
    behave as usual.
    """
    request = InterruptRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.signal = signum

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
