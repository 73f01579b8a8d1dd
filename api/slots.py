"""A counted limit on requests in flight whose free slot goes to whoever runs first, not to the longest waiter."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """Like ``asyncio.Semaphore``, except that a released slot is not reserved for a waiter.

    A semaphore hands a released slot to its first waiter, which runs only on
    a later turn of the event loop; until then the slot counts as taken, and a
    request that comes meanwhile queues behind the waiter even though it could
    have run at once. A read on the loop never yields while it holds its slot,
    so without waiters slots never run out; but once a burst of writes had
    filled them, each slot changed hands through a waiter, one turn of the loop
    each, and the queue never emptied: list pages waited 300 ms at the door
    for the rest of the run, where they had waited 0.2 ms before the burst.
    Here a woken waiter takes a slot only if one is still free when it runs,
    else waits again for what is left of its time.
    """

    def __init__(self, size: int) -> None:
        self.size = self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def all_free(self) -> bool:
        return self.free == self.size

    def take_now(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self, timeout: float) -> bool:
        """A slot within ``timeout`` seconds (True), or none (False). Without yielding if one is free."""
        if self.take_now():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(left):  # not wait_for: on 3.11 it can swallow a cancellation
                    await waiter  # cancelled on timeout: a later wake-up skips it
            except TimeoutError:
                break
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: the wake-up is another waiter's
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if self.take_now():
                return True
        return self.take_now()

    def give_back(self) -> None:
        self.free += 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
