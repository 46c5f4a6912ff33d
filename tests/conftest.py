from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

# A handful of languages that exercise every path: model-checked (deu, fra, swh), script-only (cri, chr_Cher),
# a macrolanguage label (arb via lid.176 "ar"), and one the model fails on the UDHR text (yor).
SMALL_LANGS = "deu_Latn,fra_Latn,swh_Latn,arb_Arab,cri_Latn,chr_Cher,yor_Latn"


@pytest.fixture(scope="session")
def small_build(tmp_path_factory) -> Path:
    from pipelines.build import main

    output = tmp_path_factory.mktemp("builds") / "small"
    assert main(["--langs", SMALL_LANGS, "--output", str(output), "--tasks", "3", "--workers", "1"]) == 0
    return output


# -- object storage: moto's S3 server, reached over HTTP by s3fs (the S3 client itself is not mocked) -----------
@pytest.fixture(scope="session")
def s3():
    """A real S3 server (moto's, over HTTP) with one bucket; AWS_* point at it for the session, so subprocesses
    (torchrun, Ray workers) reach it too (tests/s3_server.py)."""
    from tests.s3_server import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3, request):
    """The session's S3 server with a new empty bucket of this test's own."""
    import re
    import uuid

    import s3fs

    from tests.s3_server import S3Server

    s3fs.S3FileSystem.clear_instance_cache()  # one made before the variables were set would keep its endpoint
    bucket = S3Server(s3.endpoint, re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8])
    bucket.filesystem().mkdir(bucket.bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()


# -- Ray: a cluster of two nodes on this machine -----------------------------------------------------------------
@pytest.fixture
def two_node_cluster() -> Iterator[str]:
    """A Ray cluster of two nodes of one CPU each, on this machine, each with a temp folder of its own; yields its
    address. (Short temp paths: Ray's socket paths must fit in 107 characters.)"""
    import shutil
    import tempfile

    from ray.cluster_utils import Cluster

    head_dir, node_dir = tempfile.mkdtemp(prefix="rayh"), tempfile.mkdtemp(prefix="rayn")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": head_dir,
                                                            "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, temp_dir=node_dir)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
        shutil.rmtree(head_dir, ignore_errors=True)
        shutil.rmtree(node_dir, ignore_errors=True)
