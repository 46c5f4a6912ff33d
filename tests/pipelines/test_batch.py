"""`pipelines.batch.FileJob`: a step over files that datatrove spreads over tasks, run by its real executor."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.executor import LocalPipelineExecutor

from pipelines.batch import FileJob, write_parquet_atomic


class NumberFiles(FileJob):
    """Item i of `items` to `<folder>/<i>.parquet`, a task owning every world_size-th item; fails on `fail_on`."""

    name = "number_files"
    type = "💽 - WRITER"

    def __init__(self, folder: Path, items: int, fail_on: int | None = None):
        super().__init__()
        self.folder, self.items, self.fail_on = Path(folder), items, fail_on

    def run_job(self, rank: int, world_size: int) -> None:
        for item in range(rank, self.items, world_size):
            if item == self.fail_on:
                raise RuntimeError(f"item {item} failed")
            write_parquet_atomic(self.folder / f"{item}.parquet", pa.table({"item": [item], "rank": [rank]}), work=True)
            self.stat_update("files")


def run(step: FileJob, tmp_path: Path, tasks: int) -> None:
    LocalPipelineExecutor([step], tasks=tasks, workers=1, logging_dir=str(tmp_path / "logs")).run()


def test_a_file_job_must_say_what_it_does():
    class NoJob(FileJob):
        name = "no_job"

    with pytest.raises(TypeError, match="run_job"):
        NoJob()


def test_tasks_share_the_job_and_yield_nothing(tmp_path):
    assert list(NumberFiles(tmp_path / "alone", 3).run(iter([pa.table({"x": [1]})]), 0, 1)) == []  # input ignored
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == ["0.parquet", "1.parquet", "2.parquet"]

    run(NumberFiles(tmp_path / "out", 7), tmp_path, tasks=3)
    owners = {int(p.stem): pq.read_table(p)["rank"][0].as_py() for p in (tmp_path / "out").glob("*.parquet")}
    assert owners == {item: item % 3 for item in range(7)}
    assert sorted(p.name for p in (tmp_path / "logs" / "completions").iterdir()) == ["00000", "00001", "00002"]
    stats = json.loads((tmp_path / "logs" / "stats.json").read_text())
    assert stats[0]["name"].endswith("number_files") and stats[0]["stats"]["files"] == 7


def test_a_failed_task_is_run_again_and_finished_ones_are_not(tmp_path):
    with pytest.raises(Exception):
        run(NumberFiles(tmp_path / "out", 4, fail_on=3), tmp_path, tasks=2)
    assert sorted(p.name for p in (tmp_path / "logs" / "completions").iterdir()) == ["00000"]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir())  # nothing half-written left
    (tmp_path / "out" / "0.parquet").unlink()  # task 0 finished: a rerun must not redo it
    run(NumberFiles(tmp_path / "out", 4), tmp_path, tasks=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.parquet", "2.parquet", "3.parquet"]
