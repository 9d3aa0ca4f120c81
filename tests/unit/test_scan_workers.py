"""The scan's dispatch loop with every batch in flight at once, as it runs on a Dask cluster: each
batch comes back exactly once, and a turn of the loop does not visit the futures still pending
(cf.wait installs a waiter on each of them, which made the loop quadratic in the batches)."""
from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path

from fastaudit.scan import ScanOptions, _Workers
from fastaudit.store import WheelRow


class CountingFuture(cf.Future):
    """A Future that counts how often anything waits on it through cf.wait's waiters."""

    waits = 0

    def __init__(self) -> None:
        super().__init__()
        outer = self

        class Waiters(list):
            def append(self, waiter: object) -> None:
                type(outer).waits += 1
                super().append(waiter)
        self._waiters = Waiters()


class ControlledExecutor(cf.Executor):
    """Runs each submitted call on a thread pool, through CountingFutures."""

    def __init__(self) -> None:
        self.pool = cf.ThreadPoolExecutor(max_workers=4)

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future = CountingFuture()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting side
                future.set_exception(e)
        self.pool.submit(run)
        return future


def batch(tmp: Path, i: int) -> list[WheelRow]:
    path = str(tmp / f"missing-{i}-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    return [WheelRow(f"k{i}", path, Path(path).name, 1, "p", "1", "cp311", "cp311", "manylinux_2_17_x86_64", "linux")]


def test_every_batch_in_flight_comes_back_once_without_visiting_the_pending(tmp_path: Path) -> None:
    workers = _Workers(ScanOptions(jobs=2, scheduler="tcp://unused:0"))  # a cluster: no in-flight bound
    executor = ControlledExecutor()
    workers.executor, workers._close = executor, lambda wait: executor.pool.shutdown(wait=wait)
    batches = [batch(tmp_path, i) for i in range(3000)]
    CountingFuture.waits = 0
    returned = [(b[0].content_key, rows) for b, rows in workers.run(batches, threading.Event())]
    workers.close(True)
    assert sorted(key for key, _ in returned) == sorted(b[0].content_key for b in batches)
    assert all(len(rows) == 1 and rows[0].status == "error" for _, rows in returned)  # the files do not exist
    assert CountingFuture.waits == 0
