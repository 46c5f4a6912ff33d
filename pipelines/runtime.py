"""Where a stage's tasks run: datatrove's Local executor (workers forked from a forkserver) or its Ray executor
(a local Ray or an existing cluster), with each Ray task's thread pools held to the CPUs it reserves."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor, RayPipelineExecutor

from pipelines import console

REPO_ROOT = Path(__file__).resolve().parents[1]
# What the tasks import. datatrove's local executor forks a stage's workers from a forkserver; preloaded there,
# they are imported once, not by each worker of each stage. pyarrow.compute, hanzidentifier and
# language_data.name_data are imported on first use, and pandas by pyarrow's first `Array.to_numpy()`
# (tests/benchmarks/bench_build.py). The command line's module comes last: it imports every stage's steps and then
# freezes what they all created for the collector (`freeze_imported`).
TASK_IMPORTS = ["__main__", "pyarrow.compute", "hanzidentifier", "language_data.name_data", "pandas", "pipelines.build"]
RAY_CPUS_PER_TASK = 1


def freeze_imported() -> None:
    """What is imported lives as long as the process: the cyclic garbage collector need not walk it again at each
    full collection, in the driver or in the workers forked from the forkserver. Called by the command line once
    it has imported everything, and before exit, which would otherwise walk every object the build left."""
    gc.freeze()


def thread_limits(cpus: int) -> dict[str, str]:
    """Environment that holds a task's thread pools to the CPUs Ray reserved for it. Ray caps OpenMP (and with it
    Arrow's pool) but not polars, whose pool otherwise spans every core: a 1-CPU task would use every core of the
    machine, and several workers would oversubscribe it."""
    return {name: str(cpus) for name in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "RAYON_NUM_THREADS")}


@dataclass(frozen=True)
class Runtime:
    """How the stages run: `executor` "local" or "ray", at most `workers` tasks at once, on the Ray cluster at
    `ray_address` (None: a local Ray, started for the build); the terminal shows records of `console_level` and
    above, and at the default level a progress bar per stage."""

    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    console_level: str = console.DEFAULT_LEVEL  # what the stages show on the terminal (pipelines.console)

    def warm_up(self) -> None:
        """Start what the first stage will need and can be readied while the driver reads its sources: the
        forkserver of the local executor (one worker runs the tasks in this process and needs none)."""
        if self.executor == "local" and self.workers > 1:
            start_forkserver()

    @contextmanager
    def session(self) -> Iterator[Runtime]:
        """While the stages run: Ray connected (and shut down after, if this build started it)."""
        started = start_ray(self.ray_address, self.workers) if self.executor == "ray" else False
        try:
            yield self
        finally:
            if started:
                import ray

                ray.shutdown()

    def run(self, pipeline: list, tasks: int, logging_dir: Path | str, mirror=None) -> None:
        executor = make_executor(self.executor, pipeline, logging_dir, tasks, self.workers, mirror)
        executor.console_level = self.console_level
        bar = self.console_level == console.DEFAULT_LEVEL and sys.stderr.isatty()
        with console.stage_progress(stage_name(logging_dir), executor.logging_dir, tasks, bar):
            executor.run()
        # datatrove's Ray executor logs a failed task and returns; the local one raises. A stage with a task that did
        # not complete must not pass for a finished one.
        incomplete = executor.get_incomplete_ranks()
        if incomplete:
            from pipelines.staging import BuildError

            raise BuildError(f"{len(incomplete)} of {tasks} tasks did not complete (tasks {incomplete[:10]}): see "
                             f"their logs in {logging_dir}/logs/")


def stage_name(logging_dir: Path | str) -> str:
    """The stage a logging folder is of: its last part (a local path or a URL)."""
    return str(logging_dir).rstrip("/").rsplit("/", 1)[-1]


class SyncedWork:
    """An executor whose tasks work in a local copy of a staging folder kept on an object store
    (`pipelines.storage.WorkMirror`): a task pulls before it runs, and pushes what it wrote before it is marked
    complete, so that a completion marker always comes after the task's files."""

    mirror = None

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        if self.mirror is not None and not self.is_rank_completed(rank):
            self.mirror.pull()
        return super()._run_for_rank(rank, local_rank, node_rank)

    def mark_rank_as_completed(self, rank: int) -> None:
        if self.mirror is not None:
            self.mirror.push()
        super().mark_rank_as_completed(rank)


class LocalExecutor(SyncedWork, console.TaskConsole, LocalPipelineExecutor):
    """datatrove's Local executor: its tasks' terminal output held to the console level, its work folder synced."""


class RayExecutor(SyncedWork, console.TaskConsole, RayPipelineExecutor):
    """datatrove's Ray executor: its tasks' terminal output held to the console level, its work folder synced."""


def make_executor(executor: str, pipeline: list, logging_dir: Path | str, tasks: int, workers: int, mirror=None):
    """datatrove's executor of a stage; `mirror`: the staging folder's WorkMirror where it is kept on a store."""
    if executor == "ray" and tasks > 1:  # a stage of one task runs here: an actor would only add its start-up
        made = RayExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logging_dir),
                           cpus_per_task=RAY_CPUS_PER_TASK, mem_per_cpu_gb=1)  # fmt: skip
    else:
        made = LocalExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logging_dir))
    made.mirror = mirror
    return made


def start_forkserver() -> None:
    """Start the forkserver datatrove's local executor forks each stage's workers from, preloading TASK_IMPORTS: it
    imports them while the driver reads its sources and runs the pivot stage. Once per build, before any stage."""
    import multiprocess
    from multiprocess import forkserver

    multiprocess.set_forkserver_preload(TASK_IMPORTS)
    forkserver.ensure_running()


# The packages the tasks import, shipped to every Ray worker through the runtime environment (py_modules): a
# cluster's nodes need neither this repository at the same path nor a shared folder. What they do not import stays
# behind.
CODE_PACKAGES = ("schemas", "langid", "pipelines", "training")
CODE_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache"]


def code_runtime_env(env_vars: dict[str, str] | None = None) -> dict:
    """The Ray runtime environment that gives workers this repository's packages (uploaded once per job, cached
    on each node by content hash) and `env_vars`."""
    return {
        "py_modules": [str(REPO_ROOT / name) for name in CODE_PACKAGES],
        "excludes": list(CODE_EXCLUDES),
        "env_vars": dict(env_vars or {}),
    }


def start_ray(address: str | None, workers: int) -> bool:
    """Connect to the cluster at `address`, or start a local Ray of `workers` CPUs; True if we started it. Either
    way the workers get the code and the thread limits through the job's runtime environment. Their output
    stays in Ray's log files (log_to_driver=False); Ray's own records in the driver are held to the console level."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = code_runtime_env(thread_limits(RAY_CPUS_PER_TASK))
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env, logging_level=console.level())
        return False
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env, logging_level=console.level())
    return True
