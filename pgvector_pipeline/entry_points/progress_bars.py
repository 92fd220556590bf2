"""Progress bars for the CLI's --direct mode on a terminal (rich, installed with Dagster): the progress lines print
above one bar per piece of long work (an export, a COPY, an index build) with its rows or tuples, bytes, rate and
time left. Off a terminal (cron, scripts) the same lines print alone."""

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from pgvector_pipeline.postgres.progress import ProgressEvent
from pgvector_pipeline.sizes import human_size


class _Rate(ProgressColumn):
    """Units per second of one bar (rows/s, tuples/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {task.fields.get('unit', '')}/s" if speed else "", style="progress.data.speed")


class BarsLog:
    """A log (info, warning) that also takes progress events and draws them as bars while its `with` block runs."""

    # How often the server's progress is read while a restore runs (instead of every 10 s).
    progress_interval_s = 1.0

    def __init__(self, console: Console):
        self._console = console
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            _Rate(),
            TimeRemainingColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "BarsLog":
        self._bars.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bars.stop()

    def info(self, msg: str) -> None:
        self._line("INFO", msg)

    def warning(self, msg: str) -> None:
        self._line("WARNING", msg)

    def _line(self, level: str, msg: str) -> None:
        self._console.print(f"{time.strftime('%H:%M:%S')} {level} {msg}", markup=False, highlight=False)

    def progress(self, event: ProgressEvent) -> None:
        amount = f"{event.done:,}" + (f" of {event.total:,}" if event.total else "") + f" {event.unit}"
        if event.bytes_done is not None:
            amount += f", {human_size(event.bytes_done)}" + (
                f" of {human_size(event.bytes_total)}" if event.bytes_total else ""
            )
        task = self._tasks.get(event.task)
        if task is None:
            task = self._tasks[event.task] = self._bars.add_task(event.task, total=event.total, amount="", unit="")
        self._bars.update(task, total=event.total, completed=event.done, amount=amount, unit=event.unit)
