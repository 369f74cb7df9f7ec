"""A dynamic batcher in plain asyncio: no gRPC, no torch.

Callers ``await batcher.submit(item, key, deadline)``; a single loop collects
queued items into batches of one ``key`` (e.g. model + width bucket) and hands
each batch to ``run_batch``. A batch closes when it holds ``max_batch_size``
items or when its oldest item has waited ``max_queue_delay_ms``; keys are
served oldest item first, so a rare key never waits behind a busy one. Items whose
deadline has passed, or whose caller has gone (cancelled), are dropped before
compute. ``run_batch`` returns one result *or exception* per item, so one
item's failure fails only that item; if ``run_batch`` itself raises, the batch
is retried one item at a time so the culprit fails alone.

Fairness: items submitted with ``defer_s`` (a page's many lines) queue apart
from the rest and are served as if they had arrived ``defer_s`` later, so a
crop sent meanwhile does not wait behind a whole page; ``batch_limit(key)``
caps how many items one dispatch of ``key`` takes, so one dispatch stays one
forward pass and the next due item waits at most that long.

Admission is measured in seconds as well as items: the batcher keeps a running
estimate of its compute time per item (an exponential moving average over
batches), and with ``max_queue_wait_s`` refuses new items while the queued ones
would take longer than that to compute (``expected_wait_s``): a client is told
at once that the server is busy instead of waiting behind seconds of work.

Time comes from a :class:`Clock`, so tests drive the batcher with a fake one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(Exception):
    """The queue holds ``max_queue_size`` items already, or more than ``max_queue_wait_s`` seconds of work."""


class DrainingError(Exception):
    """The batcher is shutting down and takes no new items."""


class DeadlineExceededError(Exception):
    """The item's deadline passed before it was computed."""


@dataclass(frozen=True)
class BatcherConfig:
    """Limits of one batcher."""

    max_batch_size: int = 32
    max_queue_delay_ms: float = 5.0
    max_queue_size: int = 1024
    #: Refuse new items while the queued ones would take longer than this to compute (None: no such limit).
    max_queue_wait_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue_size < 1 or self.max_queue_delay_ms < 0:
            raise ValueError(f"invalid batcher limits: {self}")
        if self.max_queue_wait_s is not None and self.max_queue_wait_s <= 0:
            raise ValueError(f"max_queue_wait_s must be positive: {self}")


#: Weight of the newest batch in the running estimate of compute seconds per item.
RATE_SMOOTHING = 0.3


class Clock:
    """Monotonic time and timed waits on an event (the real thing)."""

    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Return when ``event`` is set or ``timeout`` seconds have passed."""
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


@dataclass
class _Pending(Generic[T, R]):
    item: T
    key: Hashable
    enqueued: float
    deadline: float | None
    future: asyncio.Future = field(repr=False)
    #: When it counts as having arrived, for ordering (``enqueued`` plus its deferral).
    rank: float = 0.0


BatchFn = Callable[[list[Any]], Awaitable[Sequence[Any]]]


@dataclass
class BatchStats:
    """Counters for metrics and tests."""

    batches: int = 0
    items: int = 0
    expired: int = 0
    cancelled: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class DynamicBatcher(Generic[T, R]):
    """Groups concurrent submissions into batches for ``run_batch``."""

    def __init__(
        self,
        run_batch: BatchFn,
        config: BatcherConfig = BatcherConfig(),
        clock: Clock | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        batch_limit: Callable[[Hashable], int] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._batch_limit = batch_limit
        self.config = config
        self._clock = clock or Clock()
        self._on_batch = on_batch
        self._queues: OrderedDict[Hashable, deque[_Pending]] = OrderedDict()
        self._size = 0
        self._wakeup = asyncio.Event()
        self._draining = False
        self._task: asyncio.Task | None = None
        self.stats = BatchStats()
        #: Running estimate of compute seconds per item (None until a batch has run).
        self.seconds_per_item: float | None = None
        #: Items of the batch being computed now.
        self._computing = 0

    @property
    def depth(self) -> int:
        """Items waiting (not yet handed to ``run_batch``)."""
        return self._size

    @property
    def expected_wait_s(self) -> float:
        """Seconds the queued items, and those being computed, would take at the measured rate (0 before any batch
        has run): how long a new item would wait."""
        return (self._size + self._computing) * (self.seconds_per_item or 0.0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Refuse new items, finish every queued one, then end the loop."""
        self._draining = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def submit(self, item: T, key: Hashable = None, deadline: float | None = None) -> R:
        """Queue ``item`` and wait for its result (``deadline`` is on the batcher's clock)."""
        (future,) = self.submit_many([(item, key)], deadline)
        return await future

    def submit_many(self, items: Sequence[tuple[T, Hashable]], deadline: float | None = None, defer_s: float = 0.0
                    ) -> list[asyncio.Future]:
        """Queue several items at once (all or none, against the queue limit); returns their futures.

        With ``defer_s`` they are batched apart from undeferred items and served as if they had arrived that
        much later (bulk work yields to requests that arrive meanwhile, but never waits longer than that).
        """
        self.check_admission(len(items))
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        futures = []
        for item, key in items:
            future = loop.create_future()
            queue = self._queues.setdefault((key, defer_s), deque())
            queue.append(_Pending(item, key, now, deadline, future, now + defer_s))
            futures.append(future)
        self._size += len(items)
        self._wakeup.set()
        return futures

    def check_admission(self, count: int) -> None:
        """Raise what ``submit_many`` would for ``count`` more items now (``DrainingError``, ``QueueFullError``), so a
        caller can refuse a request before doing any work for it."""
        if self._draining:
            raise DrainingError("server is shutting down")
        if self._size + count > self.config.max_queue_size:
            raise QueueFullError(
                f"queue full ({self._size} items waiting, {count} more would pass {self.config.max_queue_size})"
            )
        limit = self.config.max_queue_wait_s
        if limit is not None and self._size and self.expected_wait_s > limit:
            raise QueueFullError(
                f"the {self._size + self._computing} items queued or computing are about {self.expected_wait_s:.1f} s "
                f"of work, over the limit of {limit:g} s"
            )

    def _oldest_key(self) -> Hashable:
        return min(self._queues, key=lambda k: self._queues[k][0].rank)

    def _limit(self, queue_key: tuple[Hashable, float]) -> int:
        """The most items one dispatch of a queue takes."""
        limit = self.config.max_batch_size
        return max(1, min(limit, self._batch_limit(queue_key[0]))) if self._batch_limit else limit

    def _take(self, queue_key: tuple[Hashable, float]) -> list[_Pending]:
        queue = self._queues[queue_key]
        batch = [queue.popleft() for _ in range(min(len(queue), self._limit(queue_key)))]
        if not queue:
            del self._queues[queue_key]
        self._size -= len(batch)
        return batch

    async def _loop(self) -> None:
        while True:
            if not self._queues:
                if self._draining:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # The oldest item's key goes first once that item is due, so no key starves under load; before
            # then, a key with a full batch may jump the queue (a full batch gains nothing by waiting).
            key = self._oldest_key()
            due = self._queues[key][0].enqueued + self.config.max_queue_delay_ms / 1000.0  # deferral only orders
            remaining = due - self._clock.now()
            if remaining > 0 and not self._draining:
                full = [k for k, q in self._queues.items() if len(q) >= self._limit(k)]
                if not full:
                    self._wakeup.clear()
                    await self._clock.wait(self._wakeup, remaining)
                    continue
                key = full[0]
            await self._dispatch(self._take(key))

    async def _dispatch(self, batch: list[_Pending]) -> None:
        now = self._clock.now()
        live = []
        for p in batch:
            if p.future.done():  # the caller was cancelled
                self.stats.cancelled += 1
            elif p.deadline is not None and now >= p.deadline:
                self.stats.expired += 1
                p.future.set_exception(DeadlineExceededError("deadline passed while queued"))
            else:
                live.append(p)
        if not live:
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.batch_sizes.append(len(live))
        if self._on_batch is not None:
            self._on_batch(len(live), max(now - p.enqueued for p in live))
        start = self._clock.now()
        self._computing = len(live)
        try:
            results = await run_isolated(self._run_batch, [p.item for p in live])
        finally:
            self._computing = 0
        per_item = (self._clock.now() - start) / len(live)
        previous = self.seconds_per_item
        self.seconds_per_item = per_item if previous is None else (
            RATE_SMOOTHING * per_item + (1 - RATE_SMOOTHING) * previous)
        for p, result in zip(live, results):
            if p.future.done():
                continue
            if isinstance(result, BaseException):
                p.future.set_exception(result)
            else:
                p.future.set_result(result)


async def run_isolated(run_batch: Callable[[list[T]], Awaitable[Sequence[R]]], items: list[T]) -> list[R | Exception]:
    """Run ``items`` as one batch; if that fails, run them one by one so only a failing item gets its exception.

    Returns one result per item, in order: a value, or the exception that item raised alone.
    """
    try:
        results = list(await run_batch(items))
        if len(results) != len(items):
            raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
        return results  # type: ignore[return-value]
    except Exception:
        return [await _run_one(run_batch, item) for item in items]


async def _run_one(run_batch: Callable[[list[T]], Awaitable[Sequence[R]]], item: T) -> R | Exception:
    try:
        (result,) = await run_batch([item])
        return result
    except Exception as exc:
        return exc
