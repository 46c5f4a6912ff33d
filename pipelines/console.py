"""What a build shows on the terminal, by console level (`--log-level`; `-v` is INFO, `-q/--quiet` is ERROR):

- datatrove's task logs (loguru) always go whole, from DEBUG up, to each stage's log folder
  (`<version>/logs/<stage>/logs/task_NNNNN.log`); the terminal gets only records at the console level or above;
- at the default level (WARNING) and on a terminal, one progress bar per stage (`stage_progress`): tasks done,
  rows per second, time left;
- errors always reach stderr: ERROR is the highest console level.

datatrove's `add_task_logger` always copies a task's INFO records to stderr and `setup_default_logger` (after each
task) every record, with no option to change either; `set_level` replaces both, in the process it runs in. Every
task runs `set_level` first (`TaskConsole`), so the level holds in the Local executor's worker processes and in Ray
workers too.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from collections.abc import Iterator

from loguru import logger

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "WARNING"
# datatrove's format, in the task log files and on the terminal
TASK_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | <level>{level: <8}</level> | {name}:{function}:{line} - <level>{message}</level>"
POLL_SECONDS = 0.5  # how often a stage's progress bar looks at the completed tasks (a listing of the log folder)

_level = DEFAULT_LEVEL


def level() -> str:
    """The console level of this process."""
    return _level


def check_level(name: str) -> str:
    name = name.upper()
    if name not in LEVELS:
        raise ValueError(f"--log-level: expected one of {', '.join(LEVELS)}, got {name!r}")
    return name


def shows(name: str) -> bool:
    """Whether records of level `name` reach the terminal."""
    return LEVELS.index(name) >= LEVELS.index(_level)


def set_level(name: str) -> None:
    """Hold datatrove's terminal output, in this process, to records of level `name` and above."""
    global _level
    _level = check_level(name)
    import datatrove.executor.base
    import datatrove.utils.logging

    datatrove.utils.logging.setup_default_logger = default_logger  # called by close_task_logger after each task
    datatrove.executor.base.add_task_logger = add_task_logger
    if "datatrove.executor.ray" in sys.modules:  # imported by the Ray executor only; it imports the name too
        sys.modules["datatrove.executor.ray"].add_task_logger = add_task_logger
    default_logger()


def default_logger() -> None:
    logger.remove()
    logger.add(sys.stderr, level=_level, colorize=None)


def add_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's add_task_logger with the terminal held to the console level: the task's log file still gets every
    record. As datatrove does, only the first worker's tasks (local_rank 0) show more than errors."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    terminal = _level if local_rank == 0 else "ERROR"
    logger.add(sys.stderr, level=terminal, format=prefix + TASK_FORMAT, colorize=None)
    logger.add(logfile, level="DEBUG", format=prefix + TASK_FORMAT, colorize=False)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


class TaskConsole:
    """Mixin of the build's datatrove executors: each task sets the console level in the process it runs in (a worker
    of the Local executor, a Ray worker, or the driver) before datatrove sets up its logs."""

    console_level: str = DEFAULT_LEVEL

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        set_level(self.console_level)
        return super()._run_for_rank(rank, local_rank, node_rank)


def stage_rows(stats: list) -> int:
    """What a task's stage read or made: the counters of its first step (datatrove's per-task stats)."""
    counters = stats[0].get("stats", {}) if stats else {}
    return int(sum(c.get("total", 0) if isinstance(c, dict) else c for c in counters.values()))


@contextmanager
def stage_progress(name: str, logging_dir, tasks: int, enabled: bool) -> Iterator[None]:
    """A progress bar of one stage while it runs: tasks done (datatrove's completion marks in `logging_dir`, a
    DataFolder, wherever the tasks run), rows per second (the done tasks' stats) and time left."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=tasks, desc=f"{name:<11}", unit="task", dynamic_ncols=True, file=sys.stderr,
               bar_format="{desc} {bar} {n_fmt}/{total_fmt} tasks [{elapsed}<{remaining}{postfix}]")  # fmt: skip
    done: set[str] = set()
    rows = 0
    started = time.monotonic()
    stop = threading.Event()

    def update() -> None:
        nonlocal rows
        try:
            completed = {path.rsplit("/", 1)[-1] for path in logging_dir.list_files("completions")} if logging_dir.isdir("completions") else set()
        except OSError:  # the folder is being written; the next look counts it
            return
        for rank in sorted(completed - done):
            try:
                with logging_dir.open(f"stats/{rank}.json", "r") as file:
                    rows += stage_rows(json.load(file))
            except (OSError, ValueError):  # a task of another node still writing its stats: counted without rows
                pass
            done.add(rank)
        if rows:
            bar.set_postfix_str(f"{rows / max(time.monotonic() - started, 1e-9):,.0f} rows/s", refresh=False)
        bar.update(len(done) - bar.n)

    def poll() -> None:
        while not stop.wait(POLL_SECONDS):
            update()

    thread = threading.Thread(target=poll, name=f"progress-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        update()
        bar.close()
