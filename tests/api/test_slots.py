"""api.slots.Slots: a released slot goes to whoever runs first; waiters get one within their time or none."""

from __future__ import annotations

import asyncio

import pytest

from api.slots import Slots


def test_a_released_slot_goes_to_a_request_that_runs_before_the_woken_waiter() -> None:
    """asyncio.Semaphore reserves a released slot for its first waiter, which runs a turn of the loop later;
    a request that came meanwhile had to queue behind it although a slot was free (see api.slots)."""

    async def scenario() -> list[str]:
        slots, order = Slots(1), []
        assert slots.take_now()

        async def waiter() -> None:
            assert await slots.take(timeout=5)
            order.append("waiter")
            slots.give_back()

        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # it waits now
        slots.give_back()
        assert slots.take_now()  # a request running before the waiter does takes the slot at once
        order.append("newcomer")
        reserved = asyncio.Semaphore(1)
        await reserved.acquire()
        reserved_waiter = asyncio.create_task(reserved.acquire())
        await asyncio.sleep(0)
        reserved.release()
        assert reserved.locked()  # the semaphore's slot waits for its waiter instead
        slots.give_back()
        await asyncio.wait_for(waiting, timeout=5)  # and the waiter gets the next one
        await reserved_waiter
        return order

    assert asyncio.run(scenario()) == ["newcomer", "waiter"]


def test_a_waiter_gets_no_slot_once_its_time_is_up_and_leaves_none_taken() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        assert slots.take_now()
        assert not await slots.take(timeout=0.05)
        assert slots.free == 0
        slots.give_back()
        assert slots.free == 1 and await slots.take(timeout=0.05)

    asyncio.run(scenario())


def test_a_waiter_woken_and_then_cancelled_passes_its_wake_up_on() -> None:
    async def scenario() -> bool:
        slots = Slots(1)
        assert slots.take_now()
        first = asyncio.create_task(slots.take(timeout=5))
        second = asyncio.create_task(slots.take(timeout=5))
        await asyncio.sleep(0)
        slots.give_back()  # wakes the first, which is cancelled before it runs
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, timeout=5)

    assert asyncio.run(scenario())
