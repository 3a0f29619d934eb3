"""Master.run(freeze_heap=True): the start-up heap leaves the collector's sight after the
running hook, so that a full collection in a busy proxy walks only what it made since."""

from __future__ import annotations

import asyncio
import gc

from proxycore.master import YOUNG_COLLECTION_THRESHOLD, Master

young_thresholds: list[int] = []  # gc's first threshold, seen just after the running hooks


class Recorder:
    def __init__(self) -> None:
        self.frozen_at_running: int | None = None

    def running(self) -> None:
        self.frozen_at_running = gc.get_freeze_count()


def run_once(freeze_heap: bool) -> tuple[int | None, int]:
    """Freeze counts seen by a running hook and by the loop just after it."""
    gc.unfreeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(700, *thresholds[1:])
    master = Master()
    recorder = Recorder()
    master.addons.add(recorder)
    young_thresholds.clear()

    async def main() -> int:
        task = asyncio.create_task(master.run(freeze_heap=freeze_heap))
        while recorder.frozen_at_running is None:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        after = gc.get_freeze_count()
        young_thresholds.append(gc.get_threshold()[0])
        master.shutdown()
        await task
        return after

    try:
        after = asyncio.run(main())
        return recorder.frozen_at_running, after
    finally:
        gc.unfreeze()  # the rest of this test process collects as usual
        gc.set_threshold(*thresholds)


def test_the_heap_is_frozen_once_every_running_hook_ran():
    at_running, after = run_once(freeze_heap=True)
    assert at_running == 0  # addons still start on a collectable heap
    assert after > 1000


def test_without_the_flag_nothing_is_frozen():
    assert run_once(freeze_heap=False) == (0, 0)


def test_the_tools_collect_young_objects_less_often_after_the_start():
    run_once(freeze_heap=True)
    assert young_thresholds == [YOUNG_COLLECTION_THRESHOLD] and YOUNG_COLLECTION_THRESHOLD > 700
    run_once(freeze_heap=False)
    assert young_thresholds == [700]  # tests and embedders keep the interpreter's own setting
