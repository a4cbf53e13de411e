"""How many CPU threads torch may use, chosen for the work and for the load the machine is under.

torch's intra-op threads (OpenMP) split every operation between them and wait for each other at its
end. When another process keeps one of the cores busy, the scheduler pauses one of our threads for
a time slice now and then, and every other thread waits at the end of the operation for it: one
``classify()`` call took 328 ms with 2 threads instead of 6.9 ms with 1 on a 2-core machine with one
core busy. Threads that do not wait for each other (file readers, the GUI, the network in the
main thread) only share the cores, which costs their fair share and no more.

So the product never gives torch more threads than there are cores free:

* small work (a single cell, a batch of a few) runs on one thread: it gains little from more and
  is the most exposed to the wait (hundreds of short operations);
* larger work (batches, training epochs) gets the cores no other process is using, measured from
  ``/proc/stat`` over the time since the last decision (or, with no recent reading, from how many
  tasks are running right now), less the cores our own other threads need (``reserve``: the CLI's
  file readers, napari's GUI thread); it is re-decided batch by batch and epoch by epoch, so it
  follows the load as it changes.

``NAPARI_ORGANELLE_THREADS=N`` fixes the count (for benchmarks, or a machine where the measure
misleads). Outside Linux (no ``/proc``) the load is not measured: larger work gets every core less
``reserve``. This module does not import torch (``import napari_organelle`` stays light).
"""

from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager

#: Work on fewer cells than this runs on one thread.
SMALL_BATCH = 8
#: A core another process keeps busy more than this fraction of the time counts as taken.
_TAKEN = 0.3
#: Windows (seconds) over which /proc/stat gives a usable reading: shorter ones are a few clock
#: ticks (10 ms each), longer ones say little about now.
_MIN_WINDOW, _MAX_WINDOW = 0.2, 10.0
ENV = "NAPARI_ORGANELLE_THREADS"


def cores() -> int:
    """CPUs this process may run on: its affinity, and at most its cgroup's CPU quota (a container
    limited to 2 CPUs of a 64-core host has 2)."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = max(1, os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(n, quota)) if quota else n


def _cgroup_cpus() -> int | None:
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:  # cgroup v2: "max 100000" or "200000 100000"
            q, period = fh.read().split()[:2]
        if q == "max":
            return None
        return max(1, math.ceil(int(q) / int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _forced() -> int | None:
    raw = os.environ.get(ENV, "").strip()
    try:
        n = int(raw)
    except ValueError:
        return None
    return n if n >= 1 else None


class CpuLoad:
    """How much CPU other processes use, on the CPUs this process may run on (Linux)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._mark = self._read()

    @staticmethod
    def _read():
        """(time, busy ticks of our CPUs, all ticks of our CPUs, number of them, our own ticks) or None."""
        try:
            allowed = os.sched_getaffinity(0)
            with open("/proc/stat", "rb") as fh:
                lines = fh.read().split(b"\n")
            with open("/proc/self/stat", "rb") as fh:
                own = fh.read()
        except (AttributeError, OSError):
            return None
        busy = total = 0
        n = 0
        for line in lines:
            if not line.startswith(b"cpu") or line.startswith(b"cpu "):
                continue
            parts = line.split()
            try:
                cpu = int(parts[0][3:])
            except ValueError:
                continue
            if cpu not in allowed:
                continue
            v = [int(x) for x in parts[1:9]] + [0] * max(0, 8 - len(parts[1:9]))
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            busy += user + nice + system + irq + softirq + steal
            total += user + nice + system + idle + iowait + irq + softirq + steal
            n += 1
        if n == 0:
            return None
        fields = own[own.rindex(b")") + 2:].split()  # after "pid (comm) ": state is field 3
        mine = int(fields[11]) + int(fields[12])      # utime + stime (fields 14 and 15)
        return time.monotonic(), busy, total, n, mine

    def mark(self) -> None:
        """Start a new measuring window now."""
        with self._lock:
            self._mark = self._read()

    def others(self) -> float | None:
        """Cores other processes kept busy since the last reading (which this starts anew), or
        None when that window is too short or too old to tell, or nothing can be measured."""
        now = self._read()
        with self._lock:
            then, self._mark = self._mark, now
        if now is None or then is None or now[3] != then[3]:
            return None
        dt = now[0] - then[0]
        if not _MIN_WINDOW <= dt <= _MAX_WINDOW or now[2] <= then[2]:
            return None
        other = (now[1] - then[1]) - (now[4] - then[4])
        return max(0.0, now[3] * other / (now[2] - then[2]))


def running_elsewhere() -> float | None:
    """Tasks of other processes running or waiting to run right now (a few quick looks at
    /proc/loadavg, less our own running threads), scaled to the CPUs we may use; None outside Linux."""
    try:
        online = os.cpu_count() or 1
        allowed = cores()
        counts = []
        for _ in range(3):
            with open("/proc/loadavg", "rb") as fh:
                running = int(fh.read().split()[3].split(b"/")[0])
            counts.append(running - _own_running())
        return max(0.0, sum(counts) / len(counts)) * allowed / online
    except (OSError, ValueError, IndexError):
        return None


def _own_running() -> int:
    n = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/stat", "rb") as fh:
                s = fh.read()
        except OSError:
            continue
        if s[s.rindex(b")") + 2:s.rindex(b")") + 3] == b"R":
            n += 1
    return max(1, n)


_LOAD = CpuLoad()


def others_busy() -> float | None:
    """Cores that other processes keep busy: measured over the time since the last decision when
    that is 0.2-10 s, else from the tasks running right now. None where nothing can be measured."""
    v = _LOAD.others()
    return v if v is not None else running_elsewhere()


def mark() -> None:
    """Start the load measurement now (e.g. when a command starts, before torch is imported)."""
    _LOAD.mark()


_RESERVED = 0
_RESERVED_LOCK = threading.Lock()
_GUI = 0


def keep_for_gui(n: int = 1) -> None:
    """Keep ``n`` cores for a GUI thread (napari's) from now on, when the machine has more than
    ``n``: torch gets that many fewer in :func:`threads_for` (never fewer than one)."""
    global _GUI
    _GUI = max(0, min(int(n), cores() - 1))


@contextmanager
def reserving(n: int):
    """While the block runs, ``n`` cores are kept for our own busy threads (e.g. file readers that
    prepare cells): :func:`threads_for` gives torch that many fewer."""
    global _RESERVED
    n = max(0, int(n))
    with _RESERVED_LOCK:
        _RESERVED += n
    try:
        yield
    finally:
        with _RESERVED_LOCK:
            _RESERVED -= n


def threads_for(cells: int | None = None, *, reserve: int = 0) -> int:
    """Threads for torch for work on ``cells`` cells (None: a large job, e.g. a training epoch):
    one for small work, else the cores that neither other processes nor ``reserve`` of our own
    busy threads (plus those kept by :func:`reserving`) use; at least one.
    ``NAPARI_ORGANELLE_THREADS`` overrides."""
    forced = _forced()
    if forced is not None:
        return forced
    if cells is not None and cells < SMALL_BATCH:
        return 1
    n = cores()
    other = others_busy()
    taken = 0 if other is None else max(0, math.ceil(other - _TAKEN))
    return max(1, min(n, n - taken - max(0, int(reserve)) - _RESERVED - _GUI))


def pipeline_split(n: int | None = None) -> tuple[int, int]:
    """(torch threads for the network, file-reading threads) for a run that reads, checks and
    prepares cells in reading threads while the network classifies them: on up to 3 cores one
    network thread and two readers (each reader waits for files and for the GIL now and then, so
    the cores stay busy); from 4 cores on, half each."""
    n = cores() if n is None else max(1, int(n))
    net = 1 if n < 4 else n // 2
    return net, min(8, max(2, n - net))


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads in this thread, then put back what was set.

    (OpenMP keeps the thread count per calling thread: a worker thread has to set its own.)"""
    import torch

    old = torch.get_num_threads()
    n = max(1, int(n))
    if n != old:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if n != old:
            torch.set_num_threads(old)
