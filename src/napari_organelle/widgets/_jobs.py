"""Long work off napari's GUI thread: one generator ``thread_worker`` per run, with progress and Stop.

A dock's work is a generator function ``work(job)`` that napari's ``create_worker`` runs in a worker
thread. It yields :class:`Progress` (shown in the dock's progress bar and napari's activity panel)
or other values (handed to ``on_yield`` in the GUI thread) and returns its result, which ``on_done``
shows in the GUI thread. :func:`stream` runs a core call that reports through a callback (training,
reconstruction) in a helper thread and yields what it reports, as careamics-napari does.

Stop sets ``job.stop`` (the core's ``should_stop``). A run whose result is dropped on a stop is
also aborted at its next yield (at most ``POLL_S`` away): the dock is ready again at once and
nothing the stopped run computed is ever added. A run that keeps its result (training: the best
weights so far) goes on until the core returns. Closing napari stops every run (``quit``).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from ..preprocess import OrganelleError

logger = logging.getLogger("napari_organelle")
POLL_S = 0.1
_DONE = object()


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    text: str = ""


def notify_error(exc: BaseException, what: str = "The operation") -> str:
    """Show ``exc`` as a napari notification (never a traceback dialog); return the message.

    Problems the user can fix (OrganelleError, CheckpointError) are warnings with their own text;
    anything else is one short error line, its traceback in the log."""
    from napari.utils.notifications import show_error, show_info, show_warning

    if isinstance(exc, InterruptedError):
        show_info(msg := f"{what} was stopped.")
    elif isinstance(exc, OrganelleError):
        show_warning(msg := str(exc))
    else:
        msg = (f"{what} ran out of memory. Try a smaller image, fewer planes, or a crop."
               if isinstance(exc, MemoryError) else
               f"{what} failed: {type(exc).__name__}: {exc}. The full traceback is in the log.")
        logger.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
        show_error(msg)
    return msg


def stream(target: Callable[[Callable[[Any], None]], Any], job: "Job"):
    """Generator: run ``target(report)`` in a helper thread and yield each value it reports (None
    every POLL_S while it is quiet, so an abort is noticed); return what it returns, raise what it
    raises. ``job.done`` is set when the helper thread ends."""
    q: queue.SimpleQueue = queue.SimpleQueue()
    box: dict = {}

    def run():
        try:
            box["value"] = target(q.put)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the worker, shown by the dock
            box["error"] = exc
        finally:
            job.done.set()
            q.put(_DONE)

    job.helper = threading.Thread(target=run, name="organelle-job", daemon=True)
    job.helper.start()
    while True:
        try:
            item = q.get(timeout=POLL_S)
        except queue.Empty:
            item = None
        if item is _DONE:
            break
        yield item
    if "error" in box:
        raise box["error"]
    return box.get("value")


class _Failed(Exception):
    """Carries a RuntimeError out of the worker (see Job._run)."""


def _worker_class():
    from napari.qt.threading import GeneratorWorker

    class StoppableWorker(GeneratorWorker):
        """quit() (also napari's "cancel all tasks" on close) sets the job's stop event first."""

        job: "Job | None" = None

        def quit(self) -> None:
            if self.job is not None:
                self.job.stop.set()
            super().quit()

        def work(self):
            try:
                return super().work()
            finally:
                if self.job is not None and self.job.helper is None:
                    self.job.done.set()

    return StoppableWorker


_RUNNING: "set[Job]" = set()
_EXIT_HOOKED = False


def _wait_for_workers(msecs: int = 10_000) -> None:
    """At exit (or quit): stop every run, then let the workers end before Qt's objects go away."""
    from qtpy.QtCore import QThreadPool

    for job in list(_RUNNING):
        job.cancel()
    QThreadPool.globalInstance().waitForDone(msecs)


def _hook_exit() -> None:
    global _EXIT_HOOKED
    if not _EXIT_HOOKED:
        import atexit

        from qtpy.QtWidgets import QApplication

        atexit.register(_wait_for_workers)
        if (app := QApplication.instance()) is not None:
            app.aboutToQuit.connect(_wait_for_workers)
        _EXIT_HOOKED = True


class Job:
    """One run of ``work(job)`` in a napari generator worker; see the module docstring."""

    def __init__(self, work, *, desc: str, on_done=None, on_error=None, on_yield=None, on_finished=None,
                 keep_on_stop: bool = False, activity: bool = False) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self.stop, self.done = threading.Event(), threading.Event()
        self.helper: threading.Thread | None = None
        self.keep_on_stop, self.stopped, self.finished = keep_on_stop, False, False
        self._on = {"done": on_done, "error": on_error, "yield": on_yield, "finished": on_finished}
        # napari's activity panel for long runs (training); creating its bar repaints the canvas, which
        # under software OpenGL costs 100-250 ms: a classification shows its progress in the dock only
        self.pbar = progress(total=0, desc=desc) if activity else None
        self.desc = desc
        self.worker = create_worker(self._run, work, _start_thread=False, _ignore_errors=True,
                                    _worker_class=_worker_class())
        self.worker.job = self
        self.worker.yielded.connect(self._yielded)
        self.worker.returned.connect(lambda v: self._call("done", v))
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)

    def _run(self, work):
        try:
            return (yield from work(self))
        except RuntimeError as exc:  # superqt swallows a RuntimeError (and never says "finished")
            raise _Failed(exc) from exc

    def start(self) -> "Job":
        _hook_exit()
        _RUNNING.add(self)
        self.worker.start()
        return self

    @property
    def running(self) -> bool:
        return not self.finished

    def cancel(self) -> None:
        """Stop: the core stops at its next check; a run that drops its result is aborted now."""
        self.stopped = True
        self.stop.set()
        if not self.keep_on_stop:
            self.worker.quit()

    def _call(self, what: str, *args) -> None:
        fn = self._on[what]
        if fn is None or (what == "done" and self.stopped and not self.keep_on_stop):
            return  # a stopped run adds nothing
        try:
            fn(*args)
        except RuntimeError as exc:
            if "deleted" not in str(exc):
                notify_error(exc, self.desc)
            self.cancel()  # its dock was closed: nobody is waiting for the rest
        except Exception as exc:  # noqa: BLE001 - a bug in a result handler must not crash napari
            notify_error(exc, self.desc)

    def _yielded(self, value) -> None:
        if isinstance(value, Progress) and self.pbar is not None:
            if value.total and self.pbar.total != value.total:
                self.pbar.total = value.total
            if value.done > self.pbar.n:
                self.pbar.update(value.done - self.pbar.n)
        if value is not None:
            self._call("yield", value)

    def _errored(self, exc) -> None:
        if not (self.stopped and not self.keep_on_stop):
            self._call("error", exc.args[0] if isinstance(exc, _Failed) else exc)

    def _finished(self) -> None:
        self.finished = True
        _RUNNING.discard(self)
        if self.pbar is not None:
            self.pbar.close()
        self._call("finished")


class RunControls(Container):
    """The Run button (it reads "Stop" while a job runs), a progress bar and the dock's message line.

    ``start(work, ...)`` switches them to "running" and starts a :class:`Job`; ``say(text)`` writes
    the message (rich text, wrapped). The dock's ``run`` is connected to the button by the dock."""

    def __init__(self, run_text: str, stop_text: str = "Stop") -> None:
        self.button = PushButton(text=run_text)
        self.bar = ProgressBar(value=0, max=1, visible=False)
        self.message = wrapped_label()
        super().__init__(widgets=[self.button, self.bar, self.message], labels=False)
        self.margins = (0, 0, 0, 0)
        self.run_text, self.stop_text = run_text, stop_text
        self.job: Job | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, work, *, desc: str, on_done, what: str, message: str, on_yield=None, on_finished=None,
              keep_on_stop: bool = False, activity: bool = False) -> Job:
        self.button.text, self.bar.visible = self.stop_text, True
        self.bar.max, self.bar.value = 0, 0  # busy until the first Progress
        self.say(message)
        job = Job(work, desc=desc, on_done=on_done, on_error=lambda exc: self.say(notify_error(exc, what)),
                  on_yield=self._chain(on_yield), on_finished=lambda: self._finished(job, what, on_finished),
                  keep_on_stop=keep_on_stop, activity=activity)
        self.job = job
        return job.start()

    def stop(self, message: str = "Stopping...") -> None:
        if self.busy:
            self.job.cancel()
            self.say(message)
            if self.job.keep_on_stop:  # it ends at the core's next check (training: after the batch)
                self.button.text, self.button.enabled = "Stopping...", False

    def _chain(self, on_yield):
        def handle(value):
            if isinstance(value, Progress) and value.total:
                self.bar.max, self.bar.value = value.total, min(value.done, value.total)
            elif on_yield is not None:
                on_yield(value)
        return handle

    def _finished(self, job: Job, what: str, then=None) -> None:
        if self.job is job:
            self.job = None
        self.button.text, self.bar.visible, self.button.enabled = self.run_text, False, True
        if job.stopped and not job.keep_on_stop:
            self.say(f"{what} was stopped; nothing was added.")
        if then is not None:
            then()

    def say(self, text: str) -> None:
        self.message.value = text


def fit_dock(dock: Container, body: Container, min_height: int) -> None:
    """Put ``body`` in a vertical scroll area inside ``dock`` (napari docks a magicgui widget's
    ``.native``, which for magicgui's own scrollable Container is the inner widget, so it never scrolls),
    with drop-downs that never widen the dock and a modest minimum height: three docks share a 1000 px
    screen."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(body.native)
    dock.margins = (0, 0, 0, 0)
    dock.native.layout().addWidget(scroll)
    dock.native.setMinimumHeight(min_height)
    dock.native.setMinimumWidth(360)  # room for napari's title "<dock name> (napari-organelle)"
    body.native.layout().addStretch(1)
    narrow(body)


def narrow(widget) -> None:
    """Drop-downs that never widen their dock: long names are elided."""
    from qtpy.QtWidgets import QComboBox

    for combo in widget.native.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)


def wrapped_label(text: str = "") -> Label:
    """A magicgui Label that wraps its (rich) text to the dock's width and can be selected."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=text)
    label.native.setWordWrap(True)
    label.native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.native.setMinimumWidth(10)  # never widens the dock: long words wrap, not push
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def in_background(fn, on_done, *args, on_error=None):
    """Run ``fn(*args)`` in a napari worker and hand its result to ``on_done`` (or what it raised to
    ``on_error``; by default it is logged) in the GUI thread. For short chores off the GUI thread:
    importing torch, listing models and devices, loading a model. A dock closed meanwhile is skipped."""
    from napari.qt.threading import create_worker

    def deliver(callback, value):
        try:
            callback(value)
        except RuntimeError:  # the widget was deleted meanwhile
            logger.debug("background result of %s dropped", getattr(fn, "__name__", fn))

    _hook_exit()
    worker = create_worker(fn, *args, _start_thread=False, _ignore_errors=True)
    worker.returned.connect(lambda value: deliver(on_done, value))
    worker.errored.connect(lambda exc: deliver(on_error, exc) if on_error else
                           logger.warning("%s failed: %s", getattr(fn, "__name__", fn), exc))
    worker.start()
    return worker
