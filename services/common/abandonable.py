"""CPU-bound work a caller may walk away from.

Grading runs pandas, which cannot be interrupted. In a pool thread (asyncio.to_thread) it
outlives a caller that cancelled or ran out of deadline, and it holds up the process's exit:
asyncio.run and the interpreter both join such threads, so a SIGTERM during a long grade
waited for the grade. Here the work runs in a daemon thread: the caller's cancellation
returns at once, the result is dropped, and exit does not wait. `on_done` runs on the event
loop when the work really ends, so a concurrency slot stays taken until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def run_abandonable(fn: Callable[[], T], *, on_done: Callable[[], None], name: str) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: object, failed: bool) -> None:
        try:
            on_done()
        finally:  # a failing on_done must not leave the caller waiting forever
            # A done future means the caller went away: nobody wants the result.
            if not future.done():
                if failed:
                    future.set_exception(value)  # type: ignore[arg-type]
                else:
                    future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        value: object
        try:
            value, failed = fn(), False
        except BaseException as exc:  # delivered to the caller, never lost in the thread
            value, failed = exc, True
        # A closed loop means the process is on its way out: nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, value, failed)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
