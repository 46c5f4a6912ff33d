"""What a build prints on the terminal (pipelines/console.py): --quiet, the default progress bars, -v, and errors
that reach stderr at every level. The builds run as commands under a real pseudo-terminal, as a user sees them."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest

from pipelines import console
from pipelines.build import parse_args
from pipelines.build_key import reproduce_command
from pipelines.options import BuildOptions
from pipelines.runtime import LocalExecutor
from tests.conftest import REPO_ROOT

BUILD = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py")]
STAGES = ("pivot", "pairs", "mix", "shards", "manifest")  # the stages of a build of the embedded corpus


def run_on_a_terminal(args: list[str], timeout: float = 300, cwd=REPO_ROOT) -> tuple[int, str]:
    """Run a command with stdout and stderr on one pseudo-terminal; its exit status and all it wrote there."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, cwd=cwd)
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], timeout)
        if not ready:
            process.kill()
            raise TimeoutError(f"{args} wrote nothing for {timeout} s")
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: every process that held it has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout), b"".join(chunks).decode("utf-8", "replace")


def lines(text: str) -> list[str]:
    """The terminal's lines, blank ones too: a progress bar redrawn with \\r stays one line (as it last showed)."""
    return [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")[:-1]]


def test_the_default_shows_a_progress_bar_per_stage_and_no_task_logs(tmp_path):
    code, text = run_on_a_terminal([*BUILD, "--langs", "deu_Latn", "--output", str(tmp_path / "out"), "--workers", "2", "--tasks", "3"])
    assert code == 0, text
    shown = lines(text)
    bars = [line for line in shown if " tasks [" in line]
    assert [bar.split()[0] for bar in bars] == list(STAGES), shown
    assert all("rows/s" in bar for bar in bars if not bar.startswith("manifest"))  # the manifest counts no rows
    assert any(bar.split()[0] == "pairs" and " 3/3 tasks" in bar for bar in bars)
    assert not [line for line in shown if "| INFO " in line or "| SUCCESS " in line]
    assert shown[-1].startswith("output: ") and "removed pairs:" in shown


def test_verbose_shows_the_task_logs(tmp_path):
    result = subprocess.run([*BUILD, "--langs", "deu_Latn", "--output", str(tmp_path / "out"), "--workers", "1", "-v"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Launching pipeline for rank=0" in result.stderr and "tasks [" not in result.stderr  # logs, no bars


def test_an_unknown_language_is_an_error_line_under_quiet(tmp_path):
    result = subprocess.run([*BUILD, "--langs", "deu_Latn,xyz_Latn", "--output", str(tmp_path / "out"), "--quiet"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] and "xyz_Latn" in result.stderr
    assert result.stdout == ""


def test_the_console_options():
    assert [parse_args(argv).log_level for argv in ([], ["-q"], ["--quiet"], ["-v"], ["--log-level", "debug"], ["--log-level=error"])] == \
        ["WARNING", "ERROR", "ERROR", "INFO", "DEBUG", "ERROR"]  # fmt: skip
    for wrong in (["-q", "-v"], ["--quiet", "--log-level", "INFO"], ["--log-level", "loud"]):
        with pytest.raises(SystemExit):
            parse_args(wrong)
    with pytest.raises(ValueError, match="--log-level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"):
        BuildOptions(log_level="loud")
    assert BuildOptions(log_level="info").log_level == "INFO"


def test_a_missing_source_file_is_an_error_line_under_quiet(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: missing\nparallel:\n  - type: parquet\n    path: {tmp_path / 'nowhere' / '*.parquet'}\n"
                      "    src_lang: deu_Latn\n    tgt_lang: eng_Latn\n")  # fmt: skip
    result = subprocess.run([*BUILD, "--recipe", str(recipe), "--output", str(tmp_path / "out"), "-q"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and "nowhere" in errors[0], result.stderr


def failing_step(data, rank: int = 0, world_size: int = 1):
    raise RuntimeError("the step broke on purpose")


def test_a_failing_task_reaches_stderr_at_the_quietest_level_and_its_log_keeps_everything(tmp_path, capfd):
    executor = LocalExecutor([failing_step], tasks=1, workers=1, logging_dir=str(tmp_path / "logs"))
    executor.console_level = "ERROR"
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            executor.run()
        err = capfd.readouterr().err
        assert "the step broke on purpose" in err and "Launching pipeline" not in err
        log = (tmp_path / "logs" / "logs" / "task_00000.log").read_text()
        assert "Launching pipeline for rank=0" in log and "the step broke on purpose" in log
    finally:
        console.set_level(console.DEFAULT_LEVEL)


def test_the_console_options_are_not_part_of_the_reproduce_command():
    from pipelines import recipe as recipes

    recipe = recipes.load("embedded")
    argv = ["--langs", "deu_Latn", "-q", "--log-level", "DEBUG", "--verbose", "--log-level=INFO", "--quiet", "-v"]
    assert reproduce_command(argv, recipe, "v1.0.0") == "python pipelines/build.py --langs deu_Latn --version v1.0.0"


def test_stage_rows_are_the_first_steps_counters():
    stats = [{"name": "read", "stats": {"train": {"total": 5}, "test": {"total": 2}}}, {"name": "write", "stats": {"kept": {"total": 99}}}]
    assert console.stage_rows(stats) == 7 and console.stage_rows([]) == 0


@pytest.mark.slow
def test_a_quiet_build_of_every_language_prints_its_summary_and_keeps_the_task_logs(tmp_path):
    code, text = run_on_a_terminal([*BUILD, "--langs", "all", "--output", str(tmp_path / "all"), "--quiet"])
    assert code == 0, text
    shown = lines(text)
    assert len(shown) == 2, shown  # the goal: at most 20
    assert shown[0].startswith("train ") and "removed pairs" in shown[0] and shown[1].startswith(f"output: {tmp_path / 'all'}")
    task_log = (tmp_path / "all" / "logs" / "pairs" / "logs" / "task_00000.log").read_text()
    assert "Launching pipeline for rank=0" in task_log and "Processing done for rank=0" in task_log
