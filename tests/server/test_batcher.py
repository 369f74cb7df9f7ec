"""The dynamic batcher with a fake model and a fake clock: no gRPC, no torch, no sleeping."""

from __future__ import annotations

import asyncio

import pytest

from server.batcher import (
    BatcherConfig,
    Clock,
    DeadlineExceededError,
    DrainingError,
    DynamicBatcher,
    QueueFullError,
)


class FakeClock(Clock):
    """Time moves only when a test calls :meth:`advance`."""

    def __init__(self) -> None:
        self.t = 0.0
        self._timers: list[tuple[float, asyncio.Event]] = []

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        timer = asyncio.Event()
        self._timers.append((self.t + timeout, timer))
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(timer.wait())]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for due, timer in self._timers:
            if due <= self.t:
                timer.set()
        self._timers = [(d, e) for d, e in self._timers if d > self.t]


class FakeModel:
    """Records batches; ``fail`` items raise inside the batch, ``explode`` makes the whole call fail."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if any(i == "explode" for i in items):
            raise RuntimeError("batch blew up")
        return [ValueError(f"bad {i}") if str(i).startswith("fail") else f"ok:{i}" for i in items]


async def settle() -> None:
    """Let every ready task run (no time passes on the fake clock)."""
    for _ in range(20):
        await asyncio.sleep(0)


def make(config: BatcherConfig, model: FakeModel | None = None):
    clock, model = FakeClock(), model or FakeModel()
    batcher = DynamicBatcher(model, config, clock)
    batcher.start()
    return batcher, model, clock


async def test_full_batch_runs_without_waiting_for_the_delay() -> None:
    batcher, model, _ = make(BatcherConfig(max_batch_size=4, max_queue_delay_ms=1000))
    tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await settle()
    assert model.batches == [[0, 1, 2, 3]]
    assert [t.result() for t in tasks] == ["ok:0", "ok:1", "ok:2", "ok:3"]
    await batcher.stop()


async def test_partial_batch_waits_for_the_delay_then_runs() -> None:
    batcher, model, clock = make(BatcherConfig(max_batch_size=8, max_queue_delay_ms=10))
    tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await settle()
    assert model.batches == []
    clock.advance(0.009)
    await settle()
    assert model.batches == []
    clock.advance(0.002)
    await settle()
    assert model.batches == [[0, 1, 2]] and all(t.done() for t in tasks)
    await batcher.stop()


async def test_batches_hold_one_key_only() -> None:
    batcher, model, clock = make(BatcherConfig(max_batch_size=8, max_queue_delay_ms=5))
    tasks = [asyncio.ensure_future(batcher.submit(f"{k}{i}", key=k)) for i in range(3) for k in ("a", "b")]
    await settle()
    clock.advance(0.01)
    await settle()
    assert sorted(model.batches) == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    assert all(t.result().startswith("ok:") for t in tasks)
    await batcher.stop()


async def test_one_failing_item_fails_alone() -> None:
    batcher, model, clock = make(BatcherConfig(max_batch_size=3, max_queue_delay_ms=5))
    tasks = [asyncio.ensure_future(batcher.submit(i)) for i in ("x", "fail1", "y")]
    await settle()
    assert tasks[0].result() == "ok:x" and tasks[2].result() == "ok:y"
    with pytest.raises(ValueError, match="bad fail1"):
        tasks[1].result()
    await batcher.stop()


async def test_a_batch_that_raises_is_retried_item_by_item() -> None:
    batcher, model, _ = make(BatcherConfig(max_batch_size=3, max_queue_delay_ms=5))
    tasks = [asyncio.ensure_future(batcher.submit(i)) for i in ("p", "explode", "q")]
    await settle()
    assert tasks[0].result() == "ok:p" and tasks[2].result() == "ok:q"
    with pytest.raises(RuntimeError, match="blew up"):
        tasks[1].result()
    assert model.batches[0] == ["p", "explode", "q"] and ["p"] in model.batches
    await batcher.stop()


async def test_expired_and_cancelled_items_are_dropped_before_compute() -> None:
    batcher, model, clock = make(BatcherConfig(max_batch_size=8, max_queue_delay_ms=10))
    expired = asyncio.ensure_future(batcher.submit("late", deadline=0.005))
    cancelled = asyncio.ensure_future(batcher.submit("gone"))
    kept = asyncio.ensure_future(batcher.submit("kept", deadline=1.0))
    await settle()
    cancelled.cancel()
    clock.advance(0.02)
    await settle()
    assert model.batches == [["kept"]]
    assert kept.result() == "ok:kept"
    with pytest.raises(DeadlineExceededError):
        expired.result()
    assert batcher.stats.expired == 1 and batcher.stats.cancelled == 1
    await batcher.stop()


async def test_queue_limit_and_all_or_nothing_submission() -> None:
    model = FakeModel()
    model.gate = asyncio.Event()  # hold the first batch inside the model
    batcher, _, clock = make(BatcherConfig(max_batch_size=2, max_queue_delay_ms=0, max_queue_size=3), model)
    running = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
    await settle()
    assert model.batches == [[0, 1]] and batcher.depth == 0
    queued = batcher.submit_many([(10, None), (11, None), (12, None)])
    with pytest.raises(QueueFullError):
        await batcher.submit(13)
    with pytest.raises(QueueFullError):
        batcher.submit_many([(20, None)])
    assert batcher.depth == 3
    model.gate.set()
    await settle()
    assert [f.result() for f in queued] == ["ok:10", "ok:11", "ok:12"]
    assert [t.result() for t in running] == ["ok:0", "ok:1"]
    await batcher.stop()


async def test_stop_finishes_queued_items_and_refuses_new_ones() -> None:
    batcher, model, _ = make(BatcherConfig(max_batch_size=8, max_queue_delay_ms=10_000))
    tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await settle()
    assert model.batches == []
    await batcher.stop()  # no clock advance needed: draining flushes at once
    assert [t.result() for t in tasks] == ["ok:0", "ok:1", "ok:2"]
    with pytest.raises(DrainingError):
        await batcher.submit(99)


async def test_oldest_key_goes_first_and_full_keys_jump_the_queue() -> None:
    batcher, model, clock = make(BatcherConfig(max_batch_size=2, max_queue_delay_ms=10))
    first = asyncio.ensure_future(batcher.submit("old", key="a"))
    await settle()
    clock.advance(0.001)
    later = [asyncio.ensure_future(batcher.submit(f"b{i}", key="b")) for i in range(2)]
    await settle()
    assert model.batches == [["b0", "b1"]]  # full batch runs now
    clock.advance(0.01)
    await settle()
    assert model.batches == [["b0", "b1"], ["old"]]
    assert first.done() and all(t.done() for t in later)
    await batcher.stop()


async def test_a_due_item_is_not_starved_by_a_busy_key() -> None:
    """Under sustained load a busy key always has a full batch waiting; an older item of a rare key goes first."""
    model = FakeModel()
    model.gate = gate = asyncio.Event()
    batcher, model, clock = make(BatcherConfig(max_batch_size=2, max_queue_delay_ms=0), model)
    busy = [asyncio.ensure_future(batcher.submit("b0", key="b"))]  # the first batch holds the model
    await settle()
    rare = asyncio.ensure_future(batcher.submit("rare", key="a"))
    await settle()
    clock.advance(0.001)
    busy += [asyncio.ensure_future(batcher.submit(f"b{i}", key="b")) for i in range(1, 5)]  # two full batches
    await settle()
    gate.set()
    await settle()
    assert model.batches[:2] == [["b0"], ["rare"]]
    assert rare.done() and all(t.done() for t in busy)
    await batcher.stop()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        BatcherConfig(max_batch_size=0)


async def test_bulk_items_yield_to_later_requests_but_run_at_once_alone() -> None:
    """A page's lines (deferred) do not hold up a crop sent while they wait, and do not idle when nothing else is
    queued; ``batch_limit`` keeps each dispatch to one forward pass."""
    model = FakeModel()
    model.gate = gate = asyncio.Event()
    clock = FakeClock()
    batcher = DynamicBatcher(model, BatcherConfig(max_batch_size=8, max_queue_delay_ms=0), clock,
                             batch_limit=lambda key: 2)
    batcher.start()
    page = batcher.submit_many([(f"line{i}", "w") for i in range(6)], defer_s=1.0)
    await settle()
    assert model.batches == [["line0", "line1"]]  # alone, the page's lines run at once, two at a time
    clock.advance(0.01)
    crop = asyncio.ensure_future(batcher.submit("crop", key="w"))
    await settle()
    gate.set()
    await settle()
    assert model.batches[1] == ["crop"]  # the crop goes before the page's remaining lines
    assert model.batches[2:] == [["line2", "line3"], ["line4", "line5"]]
    assert crop.done() and all(f.done() for f in page)
    await batcher.stop()


async def test_queue_limit_in_seconds_of_measured_work() -> None:
    """A batch of 2 items that takes 1 s on the clock sets the rate at 0.5 s an item; then 5 queued items behind one
    computing are 3 s of work: over a 2 s limit a new item is refused at once, under it (a faster rate) it is taken.
    Before any batch has run, only the item limit counts."""
    model = FakeModel()
    model.gate = asyncio.Event()
    config = BatcherConfig(max_batch_size=2, max_queue_delay_ms=0, max_queue_size=100, max_queue_wait_s=2.0)
    batcher, _, clock = make(config, model)
    first = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
    await settle()
    assert batcher.seconds_per_item is None and batcher.expected_wait_s == 0.0
    clock.advance(1.0)  # the first batch computes for 1 s
    model.gate.set()
    await settle()
    assert [t.result() for t in first] == ["ok:0", "ok:1"]
    assert batcher.seconds_per_item == pytest.approx(0.5)
    model.gate = asyncio.Event()  # hold the next batch; queue 5 more behind it
    running = asyncio.ensure_future(batcher.submit(20))
    await settle()
    behind = batcher.submit_many([(i, None) for i in range(30, 35)])
    assert batcher.expected_wait_s == pytest.approx(3.0)  # 5 queued and 1 computing, 0.5 s each
    with pytest.raises(QueueFullError, match="about 3.0 s of work"):
        batcher.submit_many([(40, None)])
    with pytest.raises(QueueFullError):
        batcher.check_admission(1)  # what a server asks before decoding a request
    assert batcher.depth == 5  # the refused item left nothing behind
    batcher.seconds_per_item = 0.3  # the same queue at a faster measured rate: 1.8 s, admitted
    batcher.check_admission(1)
    extra = batcher.submit_many([(41, None)])
    clock.advance(0.1)
    model.gate.set()
    await settle()
    assert running.result() == "ok:20"
    assert [f.result() for f in behind + extra] == [f"ok:{i}" for i in (*range(30, 35), 41)]
    # smoothed: the 0.1 s batch of one item, then three batches that took no clock time
    assert batcher.seconds_per_item == pytest.approx((0.3 * 0.1 + 0.7 * 0.3) * 0.7**3)
    await batcher.stop()


def test_queue_wait_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatcherConfig(max_queue_wait_s=0)
