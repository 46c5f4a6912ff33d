"""A build killed inside and between every stage (issue 18), each kill rerun with the same options and with other
options; several builds of one version started at once; a build whose disk fills up.

The build reads a tiny input that makes every stage run: UDHR paragraphs of German, Swahili and the pivots as a
Parquet source (so the pivot join runs too), a few instructions per pivot, and a small shard size (shard_parts).
A kill "inside" a stage is sent as soon as the stage's first task has started (its task log appears), one
"between" two stages as soon as the next stage's executor has written its executor.json, before any of its tasks
starts (after the last stage: as soon as the manifest task completed, before the version is moved into place).
The killed staging folder is copied, so that the same kill is rerun both ways: with the same options the version
must have the bytes of an uninterrupted build; with other options it must be the other options' uninterrupted
build, with nothing of the killed one. Each rerun runs in this process (the killed build in a process group of its
own), with the killed build's task count."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from pipelines.build import main
from pipelines.manifest import read_manifest
from schemas.text.udhr import language_pairs, udhr_pairs
from tests.conftest import REPO_ROOT
from tests.faults.test_version_store import stray_or_mixed

INSTRUCTIONS = REPO_ROOT.parent / "shared" / "data" / "instructions"
STAGES = ["pivot", "pairs", "chat", "chat_dedup", "mix", "shard_parts", "shards", "manifest"]
RUN = ["--tasks", "2", "--workers", "2", "--shard-size", "4KB"]
OPTIONS = {"deu_Latn": ["--langs", "deu_Latn"], "swh_Latn": ["--langs", "swh_Latn"]}
KILLED, OTHER = "deu_Latn", "swh_Latn"
PAIRS_PER_DIRECTION = 12  # train pairs per language pair: enough for several shards of 4 KB
INSTRUCTIONS_PER_PIVOT = 16


def kill_points() -> list[tuple[str, str, str]]:
    """(name, what must appear in the work folder to kill there, the stage killed inside or after)."""
    points = []
    for number, stage in enumerate(STAGES):
        points.append((f"inside {stage}", f"logs/{stage}/logs/task_*.log", stage))
        following = STAGES[number + 1] if number + 1 < len(STAGES) else None
        after = f"logs/{following}/executor.json" if following else "logs/manifest/completions/*"
        points.append((f"after {stage}", after, stage))
    return points


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill-input")
    tables = udhr_pairs(language_pairs(["deu_Latn", "swh_Latn", "zho_Hans"]))
    pairs = pl.concat([pl.from_arrow(t) for t in tables]).filter(pl.col("split") == "train")
    pairs = pairs.sort("src_lang", "tgt_lang", "source_id")
    sample = pairs.group_by("src_lang", "tgt_lang", maintain_order=True).head(PAIRS_PER_DIRECTION)
    sample.drop("id", "source", "split").write_parquet(folder / "pairs.parquet")
    for name, lang in (("belle_seed_zh", "zho_Hans"), ("selfinstruct_seed_en", "eng_Latn")):
        lines = (INSTRUCTIONS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:INSTRUCTIONS_PER_PIVOT]
        (folder / f"{lang}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "kill-points.yaml"
    path.write_text(
        "name: kill-points\n"
        f"parallel:\n  - {{type: parquet, name: udhr-sample, path: '{folder}/pairs.parquet', license: MIT}}\n"
        "instructions:\n"
        f"  - {{format: messages, path: '{folder}/zho_Hans.jsonl', lang: zho_Hans, name: zh}}\n"
        f"  - {{format: messages, path: '{folder}/eng_Latn.jsonl', lang: eng_Latn, name: en}}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def references(recipe, tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted build per option set."""
    folder = tmp_path_factory.mktemp("kill-references")
    for name, options in OPTIONS.items():
        assert main(["--recipe", str(recipe), *options, *RUN, "--output", str(folder / name)]) == 0
    manifest = read_manifest(folder / KILLED)
    assert any("-of-00001" not in entry["path"] for entry in manifest["files"]), "no config of several shards"
    assert {"zh", "en", KILLED} <= set(manifest["rows_per_config"]), "the input does not reach every stage"
    return {name: folder / name for name in OPTIONS}


def build_command(recipe: Path) -> list[str]:
    """The build's command line, as a user runs it, without the languages and output."""
    return [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--recipe", str(recipe), *RUN]


def kill_when(process: subprocess.Popen, work_pattern: str, timeout: float = 120.0) -> bool:
    """SIGKILL the build's process group as soon as a path matching `work_pattern` exists; False if the build
    ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if glob.glob(work_pattern):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    return False


def stage_state(work: Path, stage: str) -> tuple[int, int, int]:
    """(tasks of the stage, task logs, completions) in the work folder; tasks 0 where it never started."""
    logs = work / "logs" / stage
    executor = logs / "executor.json"
    try:
        tasks = json.loads(executor.read_text())["tasks"]
    except (FileNotFoundError, ValueError):  # not written, or cut short by the kill "between" two stages
        tasks = 0
    return tasks, len(list((logs / "logs").glob("task_*.log"))), len(list((logs / "completions").glob("*")))


def where_it_died(staging: Path, name: str, stage: str) -> str | None:
    """None when the kill landed at the point `name` says, else what the work folder shows instead."""
    work = next((staging / ".work").iterdir())
    tasks, started, completed = stage_state(work, stage)
    if name.startswith("inside"):
        return None if started and completed < tasks else f"{stage}: {started} started, {completed} of {tasks} done"
    if completed != tasks or not tasks:
        return f"{stage}: {completed} of {tasks} tasks done"
    following = STAGES[STAGES.index(stage) + 1:]
    running = [s for s in following if stage_state(work, s)[1]]
    return f"tasks of {running} had started" if running else None


def killed_build(recipe: Path, output: Path, name: str, pattern: str, stage: str) -> Path:
    """Start the build of KILLED options and SIGKILL it at the point; returns its staging folder."""
    staging = output.with_name(f".{output.name}.partial")
    with open(output.with_name(f"{output.name}.log"), "ab") as log:
        process = subprocess.Popen([*build_command(recipe), *OPTIONS[KILLED], "--output", str(output)], stdout=log,
                                   stderr=log, start_new_session=True)  # fmt: skip
    assert kill_when(process, str(staging / ".work" / "*" / pattern)), f"the build ended before {name}"
    assert read_manifest(output) is None, f"killed {name}, yet the version was moved into place"
    landed = where_it_died(staging, name, stage)
    assert landed is None, f"meant to kill {name}, but {landed}"
    return staging


@pytest.mark.slow
def test_a_kill_inside_and_between_every_stage_reruns_to_a_clean_version(recipe, references, tmp_path, capsys):
    results = []
    for number, (name, pattern, stage) in enumerate(kill_points()):
        same, other = tmp_path / f"{number:02d}-same", tmp_path / f"{number:02d}-other"
        staging = killed_build(recipe, same, name, pattern, stage)
        shutil.copytree(staging, other.with_name(f".{other.name}.partial"), symlinks=True)
        for output, options in ((same, KILLED), (other, OTHER)):
            code = main(["--recipe", str(recipe), *OPTIONS[options], *RUN, "--output", str(output)])
            problems = stray_or_mixed(output, references[options]) if code == 0 else [f"the rerun exited {code}"]
            results.append((name, "same" if options == KILLED else "other", problems))
    capsys.readouterr()
    bad = [result for result in results if result[2]]
    with capsys.disabled():
        print(f"\nkill points: {len(kill_points())} (inside and after each of {len(STAGES)} stages), each rerun with "
              "the same and other options")  # fmt: skip
        print(f"versions with mixed or stray content: {len(bad)} of {len(results)}")
    assert bad == []


@pytest.mark.slow
def test_builds_started_at_once_leave_one_clean_version(recipe, references, tmp_path, capsys):
    """N builds of one output started together, half of them with other options: exactly one builds, the others
    stop while it runs with the lock's message (one line, exit 2); the version is the winner's uninterrupted build."""
    output, count = tmp_path / "v", 4
    command = [*build_command(recipe), "--output", str(output)]
    names = [KILLED if number % 2 == 0 else OTHER for number in range(count)]
    logs = [tmp_path / f"build-{number}.err" for number in range(count)]
    processes = []
    for name, log in zip(names, logs):
        with open(log, "wb") as err:  # a file, not a pipe: the winner's log must not fill a pipe nobody reads yet
            processes.append(subprocess.Popen([*command, *OPTIONS[name]], stdout=subprocess.DEVNULL, stderr=err))
    ended: list[int] = []  # the builds in the order they exited
    deadline = time.monotonic() + 300
    while len(ended) < count and time.monotonic() < deadline:
        ended += [number for number, process in enumerate(processes) if number not in ended and process.poll() is not None]
        time.sleep(0.05)
    finished = [(names[number], processes[number].wait(timeout=1), logs[number].read_text()) for number in range(count)]
    winners = [name for name, code, _ in finished if code == 0]
    refused = [err.strip() for _, code, err in finished if code == 2 and f"another build of {output} is running" in err]
    assert len(winners) == 1 and len(refused) == count - 1, [(n, c, e[-500:]) for n, c, e in finished]
    assert all(err.startswith("error: ") and "\n" not in err for err in refused), refused
    assert processes[ended[-1]].returncode == 0, "a build was refused after the winner had finished, not at once"
    problems = stray_or_mixed(output, references[winners[0]])
    with capsys.disabled():
        print(f"\nconcurrent starts: {count} builds, {len(winners)} built, {len(refused)} refused by the lock; "
              f"versions with mixed or stray content: {int(bool(problems))} of 1")  # fmt: skip
    assert problems == []


@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    """A tmpfs of `size` at `path` (yields a function that gives it room), where this process may mount one
    (root, or a container that allows it); None where it may not."""
    path.mkdir(parents=True)
    mount = shutil.which("mount")
    mounted = mount is not None and not subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                                       capture_output=True).returncode  # fmt: skip
    if not mounted:
        yield None
        return
    try:
        yield lambda room: subprocess.run([mount, "-o", f"remount,size={room}", str(path)], check=True)
    finally:
        subprocess.run([shutil.which("umount") or "umount", "-l", str(path)], capture_output=True)


def limit_file_size(limit: int) -> Callable[[], None]:
    """For subprocess's preexec_fn: writes past `limit` bytes of any file fail with EFBIG (Python ignores SIGXFSZ,
    which would otherwise kill the process)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture(scope="module")
def full_disk(recipe, references, tmp_path_factory) -> dict:
    """A build whose filesystem fills up part-way, then the same command again with room. A tmpfs of 256 KB where
    one can be mounted (then given 64 MB), else a limit on the size of each file the build writes (RLIMIT_FSIZE:
    EFBIG instead of ENOSPC; lifted for the rerun); skipped where neither is possible."""
    folder = tmp_path_factory.mktemp("full-disk")
    command = [*build_command(recipe), *OPTIONS[KILLED]]
    with small_filesystem(folder / "disk", "256k") as give_room:
        if give_room is not None:
            output, limit, full, how = folder / "disk" / "v", None, "No space left on device", "tmpfs of 256 KB"
        elif hasattr(resource, "RLIMIT_FSIZE"):
            output, limit, full, how = folder / "v", limit_file_size(16 * 1024), "File too large", "RLIMIT_FSIZE 16 KB"
        else:
            pytest.skip("neither can a tmpfs be mounted nor RLIMIT_FSIZE be set on this machine")
        failed = subprocess.run([*command, "--output", str(output)], capture_output=True, text=True, timeout=300,
                                preexec_fn=limit)  # fmt: skip
        logs = "".join(p.read_text(errors="replace") for p in output.parent.rglob("task_*.log"))
        written = read_manifest(output) is not None or output.exists()
        if give_room is not None:
            give_room("64m")
        rerun = subprocess.run([*command, "--output", str(output)], capture_output=True, text=True, timeout=300)
        problems = stray_or_mixed(output, references[KILLED]) if rerun.returncode == 0 else ["the rerun failed"]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ") or line.startswith("Traceback")]
    print(f"\ndisk full ({how}): exit {failed.returncode}, {len(errors)} error lines or tracebacks on stderr; "
          f"rerun with room: exit {rerun.returncode}, versions with mixed or stray content: {int(bool(problems))} of 1")
    return {"failed": failed, "cause_shown": full in failed.stderr + logs, "written": written, "errors": errors,
            "rerun": rerun, "problems": problems}  # fmt: skip


@pytest.mark.slow
def test_a_full_disk_writes_no_version_and_a_rerun_with_room_gives_the_same_bytes(full_disk):
    failed = full_disk["failed"]
    assert failed.returncode != 0 and full_disk["cause_shown"], failed.stderr[-2000:]
    assert not full_disk["written"]
    assert full_disk["rerun"].returncode == 0, full_disk["rerun"].stderr[-2000:]
    assert full_disk["problems"] == []


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_of_error_naming_the_cause(full_disk):
    """The build's own report is one `error:` line, the last on stderr, naming the cause. Above it, datatrove's task
    logger (which writes to stderr as well as to the task's log file) shows the failed task's traceback."""
    failed = full_disk["failed"]
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 2 and [line for line in lines if line.startswith("error: ")] == lines[-1:], failed.stderr[-2000:]
    assert "No space left on device" in lines[-1] or "File too large" in lines[-1], lines[-1]
