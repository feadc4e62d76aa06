"""run_abandonable: the caller gets the work's result even when on_done fails."""

from __future__ import annotations

import asyncio

import pytest

from services.common.abandonable import run_abandonable


def _failing_on_done(seen: list[str]):
    def on_done() -> None:
        seen.append("done")
        raise ValueError("bookkeeping broke")

    return on_done


async def test_a_failing_on_done_still_delivers_the_result():
    seen: list[str] = []
    result = await asyncio.wait_for(
        run_abandonable(lambda: 42, on_done=_failing_on_done(seen), name="t"), timeout=5
    )
    assert result == 42 and seen == ["done"]


async def test_a_failing_on_done_still_delivers_the_works_error():
    def work() -> int:
        raise KeyError("the work's own")

    seen: list[str] = []
    with pytest.raises(KeyError, match="the work's own"):
        await asyncio.wait_for(
            run_abandonable(work, on_done=_failing_on_done(seen), name="t"), timeout=5
        )
    assert seen == ["done"]
