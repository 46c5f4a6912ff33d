"""pipelines/runtime.py: the code reaches Ray workers through the runtime environment, and a build on a local
cluster of two Ray nodes, each with its own temp folder and working directory, gives the local executor's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.manifest import read_manifest
from pipelines.runtime import CODE_PACKAGES, code_runtime_env
from tests.conftest import REPO_ROOT, SMALL_LANGS
from tests.pipelines.test_build import data_hashes


def test_the_runtime_env_ships_the_packages_without_caches():
    env = code_runtime_env({"X": "1"})
    assert [Path(p) for p in env["py_modules"]] == [REPO_ROOT / name for name in CODE_PACKAGES]
    assert all((Path(p) / "__init__.py").is_file() for p in env["py_modules"])
    assert "__pycache__" in env["excludes"] and env["env_vars"] == {"X": "1"}
    assert "PYTHONPATH" not in env["env_vars"]


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH: what the workers import must come from the runtime environment."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def build_on_cluster(address: str, output: str, cwd: Path, langs: str = SMALL_LANGS) -> subprocess.CompletedProcess:
    """`pipelines/build.py --executor ray --ray-address <address>` run from `cwd` (not the repository) with no
    PYTHONPATH, writing to `output` (a folder, or a URL the build accepts)."""
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", langs, "--output", output,
               "--executor", "ray", "--ray-address", address, "--tasks", "3", "--workers", "2"]
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=900)


WHERE = """
import json, sys
sys.path.append(sys.argv[1])  # the driver finds the repository; Ray gives workers the driver's cwd, not this
import ray
from pipelines.runtime import start_ray
start_ray(sys.argv[2], 2)

@ray.remote(num_cpus=1)
def where():
    import os, pipelines, training, polars
    return {"node": ray.get_runtime_context().get_node_id(), "pipelines": pipelines.__file__,
            "training": training.__file__, "polars_threads": polars.thread_pool_size()}

print(json.dumps(ray.get([where.options(scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote() for node in ray.nodes() if node["Alive"]])))
"""


@pytest.mark.slow  # starts a 2-node Ray cluster and builds on it
def test_a_build_on_two_ray_nodes_gives_the_local_rows(small_build, two_node_cluster, tmp_path):
    # Each node's workers import the packages from the runtime environment's copy in that node's temp folder.
    where = subprocess.run([sys.executable, "-c", WHERE, str(REPO_ROOT), two_node_cluster], cwd=tmp_path,
                           env=clean_env(), capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-3000:]
    found = json.loads(where.stdout.strip().splitlines()[-1])
    assert len({f["node"] for f in found}) == 2, found
    for f in found:
        assert "runtime_resources" in f["pipelines"] and "runtime_resources" in f["training"], f
        assert not f["pipelines"].startswith(str(REPO_ROOT)) and f["polars_threads"] == 1, f

    cwd = tmp_path / "driver"
    cwd.mkdir()
    result = build_on_cluster(two_node_cluster, str(tmp_path / "out"), cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert data_hashes(tmp_path / "out") == data_hashes(small_build)
    assert read_manifest(tmp_path / "out")["content_hash"] == read_manifest(small_build)["content_hash"]


@pytest.mark.slow  # starts a local Ray
def test_a_failed_ray_task_fails_the_stage(tmp_path):
    """datatrove's Ray executor logs a task's exception and returns: the stage must not pass for finished."""
    from pipelines.runtime import Runtime
    from pipelines.staging import BuildError

    def fail_on_rank_1(data, rank, world_size):  # nested: pickled by value, the workers have no tests package
        if rank == 1:
            raise ValueError("task 1 fails")
        yield from data or []

    runtime = Runtime(executor="ray", workers=2)
    with runtime.session():
        with pytest.raises(BuildError, match=r"of 2 tasks did not complete \(tasks \[.*1\]\): see their logs in "):
            runtime.run([fail_on_rank_1], 2, tmp_path / "logs")
    assert "task 1 fails" in (tmp_path / "logs" / "logs" / "task_00001.log").read_text()


@pytest.mark.slow  # builds twice on S3, once on a 2-node Ray cluster
def test_one_build_three_places_one_content_hash(small_build, s3_bucket, two_node_cluster, tmp_path):
    """Issue 19's goal: the local build, the same build written to moto's S3 server, and the same build on a 2-node
    Ray cluster whose version and staging folder are on that server (`--work-on-store`: each task pulls what its
    node lacks and pushes what it wrote) hold the same files and content hash. The cluster's two nodes are processes
    of this machine: that a node finds earlier stages' files on the store, not in its local copy, is what
    tests/pipelines/test_storage.py's killed-build test checks."""
    cwd = tmp_path / "driver"
    cwd.mkdir()
    plain = s3_bucket.url("plain", "small")
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", SMALL_LANGS, "--output", plain,
               "--tasks", "3", "--workers", "1"]
    result = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    on_cluster = s3_bucket.url("cluster", "small")
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", SMALL_LANGS, "--output", on_cluster,
               "--work-on-store", "--executor", "ray", "--ray-address", two_node_cluster, "--tasks", "3", "--workers", "2"]
    result = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    local = read_manifest(small_build)
    for url in (plain, on_cluster):
        manifest = read_manifest(url)
        assert manifest["content_hash"] == local["content_hash"], url
        assert manifest["files"] == local["files"], url
    assert not s3_bucket.filesystem().exists(s3_bucket.url("cluster", ".small.partial"))  # the staging folder is gone
