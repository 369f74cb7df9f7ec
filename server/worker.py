"""A loaded model behind a dynamic batcher; its batches run on the device's inference thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from crnn import Recognizer, Result
from crnn.preprocess import PreparedImage
from server.batcher import BatcherConfig, Clock, DynamicBatcher
from server.contract import ReadOptions
from server.metrics import Metrics

#: A page's lines are served as if they had arrived this much later, so crops sent meanwhile go first
#: (scripts/bench/bench_page_load.py measures a crop's latency beside a page stream).
BULK_DEFER_S = 1.0


@dataclass(frozen=True)
class WorkItem:
    image: PreparedImage
    options: ReadOptions


class ModelWorker:
    """Batches one model's images across requests; inference runs on ``executor``, off the event loop.

    Items are keyed by width bucket, so a batch only ever holds images that
    the recogniser pads to the same width: a reading never depends on the
    other images in the batch.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        executor: Executor,
        config: BatcherConfig,
        metrics: Metrics,
        clock: Clock | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.name = recognizer.model.name
        self._executor = executor
        self._metrics = metrics
        self.batcher: DynamicBatcher[WorkItem, Result] = DynamicBatcher(
            self._run_batch, config, clock, on_batch=self._record_batch,
            batch_limit=recognizer.lines_per_batch,  # one dispatch, one forward pass
        )

    @property
    def executor(self) -> Executor:
        """The device's inference thread (pages are detected on the service's preparation threads)."""
        return self._executor

    def _record_batch(self, size: int, oldest_wait: float) -> None:
        self._metrics.batches.labels(self.name).inc()
        self._metrics.items.labels(self.name).inc(size)
        self._metrics.queue_seconds.labels(self.name).observe(oldest_wait)
        self._record_queue()

    def _record_queue(self) -> None:
        self._metrics.queue_depth.labels(self.name).set(self.batcher.depth)
        self._metrics.queue_wait.labels(self.name).set(self.batcher.expected_wait_s)

    def _compute(self, items: list[WorkItem]) -> list[Result]:
        return self.recognizer.recognize_prepared(
            [i.image for i in items], [i.options.allowlist for i in items], [i.options.constraint for i in items],
            [i.options.min_confidence for i in items],
        )

    async def _run_batch(self, items: list[WorkItem]) -> list[Result]:
        start = time.perf_counter()
        results = await asyncio.get_running_loop().run_in_executor(self._executor, self._compute, items)
        self._metrics.compute_seconds.labels(self.name).observe(time.perf_counter() - start)
        return results

    async def recognize(
        self, images: Sequence[PreparedImage], options: ReadOptions, deadline: float | None, bulk: bool = False
    ) -> list[Result]:
        """Queue a request's images (all or none) and wait for every reading; ``bulk`` (a page's lines) yields to
        images that arrive within ``BULK_DEFER_S``."""
        futures = self.batcher.submit_many(
            [(WorkItem(image, options), self.recognizer.run_width(image)) for image in images], deadline,
            BULK_DEFER_S if bulk else 0.0,
        )
        self._record_queue()
        try:
            return list(await asyncio.gather(*futures))
        finally:
            for future in futures:  # the caller went away or one item failed: drop the rest before compute
                future.cancel()
