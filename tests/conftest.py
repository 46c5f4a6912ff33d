from __future__ import annotations

import sys
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


@pytest.fixture(scope="session")
def s3():
    """A real S3 server (moto's, over HTTP) with one bucket; AWS_* point at it for the session (tests/s3_server.py)."""
    from tests.s3_server import s3_server

    with s3_server() as server:
        yield server
