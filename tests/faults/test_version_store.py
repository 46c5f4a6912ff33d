"""Faults of the version store (issue 18): killed builds rerun with the same or other options, two builds of one
version at once, a build that keeps no train row, a damaged version, a second version of the same build.

Every finished version is compared with an uninterrupted build of the same options (one per option set, built once
for the module): it must hold exactly the files its manifest lists (besides the manifest and logs/), no hidden file,
only the requested languages, and the same bytes."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.build import main
from pipelines.manifest import MANIFEST_NAME, read_manifest
from schemas.text.udhr import language_pairs, udhr_pairs
from tests.conftest import REPO_ROOT

QUICK = ["--tasks", "1", "--workers", "1"]
OPTIONS = {"deu_Latn": ["--langs", "deu_Latn"], "swh_Latn": ["--langs", "swh_Latn"]}
BUILD = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), *QUICK]
COMPARED = ("data/", "removed/", "LICENSE", "recipe.yaml")  # what the content hash covers: the same bytes in any rebuild


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted build per option set."""
    folder = tmp_path_factory.mktemp("references")
    for name, options in OPTIONS.items():
        assert main([*options, "--output", str(folder / name), *QUICK]) == 0
    return {name: folder / name for name in OPTIONS}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stray_or_mixed(version: Path, reference: Path) -> list[str]:
    """What is wrong with a finished version, against an uninterrupted build of the same options (empty: nothing)."""
    manifest = read_manifest(version)
    if manifest is None:
        return [f"{version}: no manifest"]
    listed = {entry["path"] for entry in manifest["files"]} | {MANIFEST_NAME}
    problems = []
    for path in sorted(version.rglob("*")):
        relative = path.relative_to(version)
        if any(part.startswith(".") for part in relative.parts):
            problems.append(f"hidden: {relative}")
        elif path.is_file() and relative.parts[0] != "logs" and relative.as_posix() not in listed:
            problems.append(f"not in the manifest: {relative}")
    problems += [f"sha256 differs from the manifest: {e['path']}" for e in manifest["files"]
                 if not (version / e["path"]).is_file() or sha256(version / e["path"]) != e["sha256"]]  # fmt: skip
    configs, expected = sorted(p.name for p in (version / "data").iterdir()), sorted(p.name for p in (reference / "data").iterdir())
    if configs != expected:
        problems.append(f"languages {configs}, asked for {expected}")
    ours = {e["path"]: e["sha256"] for e in manifest["files"] if e["path"].startswith(COMPARED)}
    theirs = {e["path"]: e["sha256"] for e in read_manifest(reference)["files"] if e["path"].startswith(COMPARED)}
    if ours != theirs or manifest["content_hash"] != read_manifest(reference)["content_hash"]:
        problems.append(f"other bytes than the uninterrupted build: {sorted(set(ours.items()) ^ set(theirs.items()))[:4]}")
    if version.with_name(f".{version.name}.partial").exists():
        problems.append("the staging folder is left beside the version")
    return problems


def test_a_renamed_staging_folder_of_other_options_is_not_published(references, tmp_path):
    """The repro of issue 18: the staging folder of a build of deu_Latn, renamed to the staging folder of the next
    build (of swh_Latn), without its manifest. Its data/ used to be published with the swh_Latn rows (exit 0)."""
    staging = tmp_path / "r" / ".b.partial"
    shutil.copytree(references["deu_Latn"], staging)
    (staging / MANIFEST_NAME).unlink()
    assert main([*OPTIONS["swh_Latn"], "--output", str(tmp_path / "r" / "b"), *QUICK]) == 0
    assert sorted(p.name for p in (tmp_path / "r" / "b" / "data").iterdir()) == ["swh_Latn", "zho_Hans"]
    assert stray_or_mixed(tmp_path / "r" / "b", references["swh_Latn"]) == []


def start_build(options: list[str], output: Path) -> subprocess.Popen:
    """The build in a process group of its own (datatrove's workers die with it); its log beside the output."""
    with open(output.with_name(f"{output.name}.log"), "ab") as log:
        return subprocess.Popen([*BUILD, *options, "--output", str(output)], stdout=log, stderr=log, start_new_session=True)


def signal_when(process: subprocess.Popen, appears: str, signum: int) -> None:
    """Send `signum` to the build's process group as soon as a path matching `appears` exists (a glob)."""
    while process.poll() is None:
        if glob.glob(appears):
            os.killpg(process.pid, signum)
            return
        time.sleep(0.005)


def leave_leftovers(staging: Path) -> None:
    """What a kill inside the shards or manifest stage can leave next to the data (a kill from outside cannot be
    timed into those few milliseconds): a half-made link of a shard and temporary files of the writers."""
    work = next((staging / ".work").iterdir())
    ready = next((work / "ready" / "train").glob("*.parquet"))
    (staging / "data" / ready.stem).mkdir(parents=True, exist_ok=True)
    os.link(ready, staging / "data" / ready.stem / ".train-00000-of-00001.parquet.partial")
    (staging / "removed").mkdir(exist_ok=True)
    (staging / "removed" / ".pair_filter.parquet.0123abcd.tmp").write_bytes(b"PAR1")
    (staging / ".README.md.tmp").write_text("half a card")


# (what appears in the work folder when the build is killed, the options of the rerun, leftovers added after the kill)
KILL_POINTS = [
    ("logs/pivot/completions/*", "deu_Latn", False),  # between the pivot and pairs stages
    ("logs/mix/completions/*", "swh_Latn", False),  # between the mix and shards stages, rerun with other options
    ("logs/manifest/logs/*", "swh_Latn", False),  # inside the manifest stage: the shards are written
    ("logs/manifest/logs/*", "deu_Latn", True),  # and as if killed inside the shards stage, or the manifest's writes
]


@pytest.mark.slow
def test_killed_builds_rerun_to_clean_versions(references, tmp_path, capsys):
    """A build of deu_Latn, SIGKILLed at a point, then rerun on the same output with the same or other options:
    the version is the uninterrupted build of the rerun's options. The kill also leaves the lock of a dead process."""
    results = []
    for number, (point, rerun, leftovers) in enumerate(KILL_POINTS):
        output = tmp_path / f"run-{number}"
        process = start_build(OPTIONS["deu_Latn"], output)
        signal_when(process, str(tmp_path / f".{output.name}.partial" / ".work" / "*" / point), signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, f"the build finished before it could be killed at {point}"
        assert read_manifest(output) is None
        if leftovers:
            leave_leftovers(tmp_path / f".{output.name}.partial")
        assert main([*OPTIONS[rerun], "--output", str(output), *QUICK]) == 0
        results.append((point, rerun, stray_or_mixed(output, references[rerun])))
    bad = [result for result in results if result[2]]
    with capsys.disabled():
        print(f"\nversions with mixed or stray content: {len(bad)} of {len(results)}")
    assert bad == []


def test_a_second_build_of_the_same_output_stops_at_once(references, tmp_path, capsys):
    """While a build holds the lock (stopped there, so that it cannot finish first), a second build of the same
    output, with other options that would empty its staging folder, stops with the lock's message; the first then
    finishes a clean version."""
    output = tmp_path / "v"
    first = start_build(OPTIONS["deu_Latn"], output)
    signal_when(first, str(tmp_path / ".v.partial" / ".build_key"), signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first build ended before it could be stopped"
        assert main([*OPTIONS["swh_Latn"], "--output", str(output), *QUICK]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"another build of {output} is running" in err
    finally:
        with contextlib.suppress(ProcessLookupError):  # it ended before it was stopped
            os.killpg(first.pid, signal.SIGCONT)
    assert first.wait() == 0, (tmp_path / "v.log").read_text()[-2000:]
    assert stray_or_mixed(output, references["deu_Latn"]) == []


def test_a_build_without_train_rows_fails_naming_the_step(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("name: nothing-fits\nparallel:\n  - {type: udhr}\nlanguages: [deu_Latn]\nfilters: {max_chars: 3}\n")
    output = tmp_path / "empty"
    assert main(["--recipe", str(recipe), "--output", str(output), *QUICK]) == 2
    err = capsys.readouterr().err
    pairs = pa.concat_tables(udhr_pairs(language_pairs(["deu_Latn", "eng_Latn", "zho_Hans"]))).to_pylist()
    german = sum(1 for p in pairs if p["split"] == "train" and "deu_Latn" in (p["src_lang"], p["tgt_lang"]))
    assert german > 0 and f"0 train rows: pair_filter removed all {german:,} train pairs of deu_Latn" in err
    assert "the version was not written" in err and not output.exists()


def test_a_damaged_version_is_not_nothing_to_do(references, tmp_path, capsys):
    version = tmp_path / "v"
    shutil.copytree(references["deu_Latn"], version)
    shard = version / "data" / "deu_Latn" / "train-00000-of-00001.parquet"
    original = shard.read_bytes()
    shard.write_bytes(original[:-100])  # truncated
    assert main([*OPTIONS["deu_Latn"], "--output", str(version), *QUICK]) == 2
    out, err = capsys.readouterr()
    assert "nothing to do" not in out and f"{shard}: {len(original) - 100} bytes, the manifest says {len(original)}" in err
    assert shard.read_bytes() == original[:-100]  # a finished version is never overwritten

    shard.write_bytes(original[:1000] + bytes([original[1000] ^ 1]) + original[1001:])  # the same size
    assert main([*OPTIONS["deu_Latn"], "--output", str(version), *QUICK]) == 0  # sizes only: the cheap check
    assert "nothing to do" in capsys.readouterr().out
    assert main([*OPTIONS["deu_Latn"], "--output", str(version), "--verify", *QUICK]) == 2
    assert f"{shard}: sha256 differs from the manifest's" in capsys.readouterr().err
    shard.write_bytes(original)
    assert main([*OPTIONS["deu_Latn"], "--output", str(version), "--verify", *QUICK]) == 0


def test_a_new_version_of_the_same_build_warns(references, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(references["deu_Latn"], store / "udhr-cross-lingual" / "v1.0.0")  # its manifest says v1.0.0
    assert main([*OPTIONS["deu_Latn"], "--store", str(store), "--bump", "patch", *QUICK]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    key = read_manifest(references["deu_Latn"])["build_key"]
    assert warnings == [f"warning: v1.0.1 has the same build key as v1.0.0 ({key}): it will hold the same rows"]
    assert stray_or_mixed(store / "udhr-cross-lingual" / "v1.0.1", references["deu_Latn"]) == []
