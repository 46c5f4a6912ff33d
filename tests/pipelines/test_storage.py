"""Versions on an object store: moto's real S3 server over HTTP (tests/s3_server.py), reached by s3fs as any S3
endpoint. One build, two places (a local folder, the S3 server), one content hash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import storage
from pipelines.manifest import MANIFEST_NAME, finished_versions, read_manifest
from pipelines.options import BuildOptions
from pipelines.staging import BUILD_KEY_NAME, SHARED_WORK_ROOT, BuildError, RemoteLock, url_key
from pipelines.versions import check_output
from tests.conftest import REPO_ROOT
from tests.s3_server import ACCESS_KEY, SECRET_KEY

LANGS = "deu_Latn,fra_Latn,swh_Latn"
NAME = "udhr-cross-lingual"  # the embedded recipe's


def build(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command line, as a user runs it, in `cwd`; the AWS_* environment (the S3 server's) is inherited."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache"), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", LANGS, "--tasks", "2", "--workers", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def s3_build(s3, tmp_path_factory):
    """A build into a store on S3 whose v1.0.0 prefix holds the leftovers of a killed upload (objects, no manifest):
    the build uploads over them. Returns (the version's URL, the finished process, its working folder)."""
    cwd = tmp_path_factory.mktemp("s3-build")
    version = s3.url("store", NAME, "v1.0.0")
    fs = s3.filesystem()
    fs.pipe(f"{version}/{BUILD_KEY_NAME}", b"an earlier upload\n")
    fs.pipe(f"{version}/data/deu_Latn/train-00000-of-00009.parquet", b"a leftover")
    done = build("--store", s3.url("store"), cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return version, done, cwd


def test_one_build_two_places_one_content_hash(s3_build, tmp_path):
    version, done, _ = s3_build
    local = build("--output", str(tmp_path / "local"), cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    on_s3, on_disk = read_manifest(version), read_manifest(tmp_path / "local")
    assert on_s3["content_hash"] == on_disk["content_hash"]
    assert on_s3["files"] == on_disk["files"]  # every file, its sha256, rows and size
    assert f"output: {version}" in done.stdout


def test_the_version_on_s3_is_finished_and_holds_only_its_files(s3, s3_build):
    version, _, _ = s3_build
    found = storage.sizes(storage.folder(version))
    manifest = read_manifest(version)
    listed = {entry["path"]: entry["bytes"] for entry in manifest["files"]}
    assert {path: found[path] for path in listed} == listed
    # the killed upload's leftovers and its marker are gone; only the logs are beside the listed files
    assert sorted(set(found) - set(listed) - {MANIFEST_NAME}) == [p for p in sorted(found) if p.startswith("logs/")]
    assert finished_versions(s3.url("store", NAME)) == ["v1.0.0"]
    assert not s3.filesystem().exists(s3.url("store", NAME, ".v1.0.0.lock"))  # released


def test_no_local_folder_is_made_for_a_url(s3_build):
    _, _, cwd = s3_build
    assert sorted(p.name for p in cwd.iterdir()) == ["cache"]  # no "s3:" folder; the staging folder is in the cache
    assert list((cwd / "cache" / "bayling" / "staging").iterdir()) == []  # and removed once uploaded
    assert BuildOptions(output="s3://bucket/x").output == "s3://bucket/x"
    assert BuildOptions(store="file:///tmp/store").store == Path("/tmp/store")


def test_a_rerun_on_s3_has_nothing_to_do_and_verify_checks_every_byte(s3, s3_build, tmp_path):
    version, _, _ = s3_build
    again = build("--store", s3.url("store"), "--verify", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{version} already holds this build" in again.stdout
    # a copy whose shard has one byte changed, same size: sizes match, sha256 does not
    fs = s3.filesystem()
    copy = s3.url("damaged", "v1.0.0")
    fs.copy(version + "/", copy + "/", recursive=True)
    shard = f"{copy}/data/deu_Latn/train-00000-of-00001.parquet"
    data = bytearray(fs.cat(shard))
    data[len(data) // 2] ^= 0xFF
    fs.pipe(shard, bytes(data))
    key = read_manifest(copy)["build_key"]
    assert check_output(copy, "v1.0.0", key) is True  # without --verify: sizes only
    damaged = build("--output", copy, "--verify", cwd=tmp_path)
    assert damaged.returncode == 2
    assert f"{shard}: sha256 differs from the manifest's" in damaged.stderr
    fs.rm(shard)
    with pytest.raises(BuildError, match=f"{shard}: missing"):
        check_output(copy, "v1.0.0", key)


def test_a_prefix_without_manifest_is_no_version(s3, s3_build):
    version, _, _ = s3_build
    fs = s3.filesystem()
    unfinished = s3.url("store", NAME, "v1.0.1")
    fs.copy(version + "/", unfinished + "/", recursive=True)
    fs.rm(f"{unfinished}/{MANIFEST_NAME}")
    assert read_manifest(unfinished) is None
    assert finished_versions(s3.url("store", NAME)) == ["v1.0.0"]
    with pytest.raises(BuildError, match="v1.0.1 holds objects and is not a finished build"):
        check_output(unfinished, "v1.0.1", "any key")
    fs.pipe(f"{unfinished}/{BUILD_KEY_NAME}", b"key\n")  # an upload of ours, killed: built and uploaded again
    assert check_output(unfinished, "v1.0.1", "key") is False


def test_nothing_secret_in_what_the_build_wrote_or_printed(s3, s3_build):
    version, done, _ = s3_build
    fs = s3.filesystem()
    objects = fs.find(version)
    assert any("/logs/" in path for path in objects) and any(path.endswith(MANIFEST_NAME) for path in objects)
    for secret in (SECRET_KEY, ACCESS_KEY):
        assert secret not in done.stdout + done.stderr
        for path in objects:
            assert secret.encode() not in fs.cat(path), path


def test_one_build_of_a_version_at_a_time(s3):
    lock = RemoteLock(s3.url("locks", ".v1.0.0.lock"))
    lock.acquire()
    with pytest.raises(BuildError, match=r"locks/\.v1\.0\.0\.lock exists"):
        RemoteLock(lock.url).acquire()
    lock.release()
    again = RemoteLock(lock.url)
    again.acquire()
    again.release()


def test_urls_are_shown_without_credentials():
    assert storage.shown("s3://user:pass@bucket/x") == "s3://bucket/x"
    assert storage.shown("/a/b") == "/a/b"
    assert storage.location("s3://b/x/") == "s3://b/x" and storage.location("file:///a/b") == Path("/a/b")


def test_source_globs_and_eval_sets_take_urls(s3, tmp_path, monkeypatch):
    import polars as pl
    import pyarrow as pa

    from pipelines.driver import gather_eval_sets
    from pipelines.sources import InstructionSource, SourceError, TableSource

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fs = s3.filesystem()
    for i, (de, en) in enumerate([("Guten Morgen.", "Good morning."), ("Danke schön.", "Thank you.")]):
        fs.pipe(s3.url("sources", f"pairs-{i}.tsv"), f"de\ten\n{de}\t{en}\n".encode())
    fs.pipe(s3.url("sources", "chat.jsonl"), b'{"instruction": "Sag hallo", "output": "Hallo"}\n')
    fs.pipe(s3.url("evals", "held-out.txt"), b"Guten Morgen.\n")

    def rows(source):
        return pl.from_arrow(pa.concat_tables(source.read(["deu_Latn"]))).sort("source_id")

    remote = TableSource(name="t", format="tsv", path=s3.url("sources", "pairs-*.tsv"), columns={"src_text": "de", "tgt_text": "en"},
                         src_lang="de", tgt_lang="en")  # fmt: skip
    for i in range(2):
        (tmp_path / f"pairs-{i}.tsv").write_bytes(fs.cat(s3.url("sources", f"pairs-{i}.tsv")))
    local = TableSource(name="t", format="tsv", path=str(tmp_path / "pairs-*.tsv"), columns=remote.columns, src_lang="de", tgt_lang="en")
    assert remote.languages() == {"deu_Latn"}
    assert rows(remote).equals(rows(local))  # the same rows and ids as from local files
    assert remote.provenance()["sha256"] == local.provenance()["sha256"] and remote.provenance()["origin"] == remote.path
    fs.pipe(s3.url("sources", "pairs-1.tsv"), "de\ten\nBitte.\tPlease.\n".encode())  # a changed object is fetched again
    assert "Bitte." in rows(remote)["src_text"].to_list()
    with pytest.raises(SourceError, match=r"no files match s3://.*/nothing-\*\.tsv"):
        TableSource(name="t", format="tsv", path=s3.url("nothing-*.tsv")).files()

    chat = pa.concat_tables(InstructionSource(format="alpaca", path=s3.url("sources", "chat.jsonl"), lang="de", name="c").read())
    assert chat.num_rows == 1

    found, records = gather_eval_sets([s3.url("evals", "held-out.txt")])
    assert found[0][0] == "held-out.txt" and Path(found[0][1]).read_text() == "Guten Morgen.\n"
    assert records[0]["origin"] == s3.url("evals", "held-out.txt")
    with pytest.raises(FileNotFoundError, match=r"evaluation set not found: s3://.*/evals/missing.txt: no such file"):
        gather_eval_sets([s3.url("evals", "missing.txt")])


@pytest.mark.slow
def test_a_staging_folder_kept_on_the_store_gives_the_same_version(s3, s3_build, tmp_path):
    """--work-on-store: the intermediate files, logs and completion markers on S3, each task syncing a local copy."""
    version, _, _ = s3_build
    output = s3.url("shared-work", "three")
    done = build("--output", output, "--work-on-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_manifest(output)["files"] == read_manifest(version)["files"]
    fs = s3.filesystem()
    assert not fs.exists(s3.url("shared-work", ".three.partial"))  # removed once the version is in place
    assert not (SHARED_WORK_ROOT / url_key(output)).exists()
    logs = [p.rsplit("/logs/", 1)[1] for p in fs.find(f"{output}/logs")]
    assert "pairs/completions/00000" in logs and "manifest/stats.json" in logs  # datatrove's, made on the store


@pytest.mark.slow
def test_a_killed_build_resumes_on_another_machine_from_the_store(s3, s3_build, tmp_path):
    """Killed after a pairs task finished; the local copy of its staging folder is then removed, as on a machine that
    never saw it: the rerun pulls from the store, skips the finished tasks and gives the same version."""
    version, _, _ = s3_build
    output = s3.url("killed", "three")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", LANGS, "--tasks", "3", "--workers", "1",
               "--output", output, "--work-on-store"]  # fmt: skip
    fs = s3.filesystem()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        fs.invalidate_cache()
        if fs.glob(s3.url("killed", ".three.partial", ".work", "*", "logs", "pairs", "completions", "*")):
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert read_manifest(output) is None
    shutil.rmtree(SHARED_WORK_ROOT / url_key(output))

    locked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert locked.returncode == 2 and "killed/.three.lock exists" in locked.stderr  # the killed build's lock
    fs.rm(s3.url("killed", ".three.lock"))
    resumed = subprocess.run([*command, "-v"], env=env, capture_output=True, text=True, timeout=300)  # -v: task logs
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "already been completed" in resumed.stderr
    assert read_manifest(output)["files"] == read_manifest(version)["files"]


def test_two_machines_share_a_staging_folder_through_the_store(s3, tmp_path):
    """What one machine's task pushed, another's pulls; temporary (hidden) files stay where they are."""
    remote = s3.url("mirror", ".v1.0.0.partial")
    one = storage.WorkMirror(tmp_path / "one", remote, (BUILD_KEY_NAME,))
    two = storage.WorkMirror(tmp_path / "two", remote, (BUILD_KEY_NAME,))
    (tmp_path / "one" / ".work" / "key" / "pairs").mkdir(parents=True)
    (tmp_path / "one" / BUILD_KEY_NAME).write_text("key\n")
    (tmp_path / "one" / ".work" / "key" / "pairs" / "deu_Latn.parquet").write_bytes(b"rows")
    (tmp_path / "one" / ".work" / "key" / "pairs" / ".fra_Latn.parquet.1234.tmp").write_bytes(b"half")
    one.push()
    two.pull()
    assert sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*") if p.is_file()) == [
        ".build_key", ".work/key/pairs/deu_Latn.parquet"]
    (tmp_path / "two" / "data").mkdir()
    (tmp_path / "two" / "data" / "train.parquet").write_bytes(b"shard")
    two.push()
    one.pull()
    assert (tmp_path / "one" / "data" / "train.parquet").read_bytes() == b"shard"
    one.remove_remote()
    assert not s3.filesystem().exists(remote)


def test_a_version_on_s3_is_published_to_the_hub(s3, s3_build, tmp_path, monkeypatch):
    from huggingface_hub import HfApi, constants

    from pipelines.publish import PublishError, publish
    from tests.hub_server import HubServer
    from tests.pipelines.test_publish import TOKEN, assert_published

    version, _, _ = s3_build
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as hub:
        publish(version, "org/three", api=HfApi(endpoint=hub.url, token=TOKEN), log=lambda line: None)
        copy = storage.cache_root() / "remote" / "s3" / version.removeprefix("s3://")
        assert_published(hub, copy, "org/three")
    with pytest.raises(PublishError, match="has no manifest.json"):
        publish(s3.url("nothing-here"), "org/three", api=HfApi(endpoint="http://127.0.0.1:9", token=TOKEN))


def test_source_files_on_the_hub_are_read_through_hf_urls(tmp_path, monkeypatch):
    from huggingface_hub import HfApi, HfFileSystem, constants

    from pipelines.sources import TableSource
    from tests.hub_server import HubServer
    from tests.pipelines.test_publish import TOKEN

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "pairs.tsv").write_text("de\ten\nGuten Morgen.\tGood morning.\n")
    with HubServer(tmp_path / "hub") as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # as HF_ENDPOINT would, set before the import
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        HfFileSystem.clear_instance_cache()
        try:
            api = HfApi(endpoint=hub.url, token=TOKEN)
            api.create_repo("org/pairs", repo_type="dataset")
            api.upload_folder(folder_path=str(tmp_path / "repo"), repo_id="org/pairs", repo_type="dataset")
            source = TableSource(name="t", format="tsv", path="hf://datasets/org/pairs/*.tsv", columns={"src_text": "de", "tgt_text": "en"},
                                 src_lang="de", tgt_lang="en")  # fmt: skip
            assert source.languages() == {"deu_Latn"}
            assert [Path(f).read_bytes() for f in source.files()] == [(tmp_path / "repo" / "pairs.tsv").read_bytes()]
        finally:
            HfFileSystem.clear_instance_cache()


def test_a_url_whose_filesystem_is_not_installed_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import importlib.util

    from pipelines.build import main

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    monkeypatch.chdir(tmp_path)
    assert main(["--langs", "deu_Latn", "--output", "gs://bucket/x", "--tasks", "1", "--workers", "1"]) == 2
    error = capsys.readouterr().err
    assert "error: gs://bucket/x: " in error and "gcsfs" in error, error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # three builds in fresh processes
def test_a_version_on_the_hub_through_hf_urls(s3_build, tmp_path, monkeypatch):
    """`--output hf://datasets/<org>/<name>/<version>` against the loopback Hub (tests/hub_server.py): HfFileSystem
    writes each file as a commit, the manifest last; the version holds the local build's files and content hash, and
    a rerun with --verify reads every file back and has nothing to do."""
    from huggingface_hub import HfApi, constants

    from tests.hub_server import HubServer

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as hub:
        HfApi(endpoint=hub.url, token="hf_test_writer").create_repo("org/versions", repo_type="dataset")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.setenv("HF_TOKEN", "hf_test_writer")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        url = "hf://datasets/org/versions/three/v1.0.0"
        done = build("--output", url, "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "hf_test_writer" not in done.stdout + done.stderr
        on_hub = sorted(HfApi(endpoint=hub.url, token="hf_test_writer").list_repo_files("org/versions", repo_type="dataset"))
        local = read_manifest(s3_build[0])
        assert {f"three/v1.0.0/{entry['path']}" for entry in local["files"]} <= set(on_hub)
        reader = [sys.executable, "-c", "import json, sys; from pipelines.manifest import read_manifest; print(json.dumps(read_manifest(sys.argv[1])))", url]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        read = subprocess.run(reader, env=env, capture_output=True, text=True, timeout=120)  # the endpoint is read at import
        manifest = json.loads(read.stdout)
        assert manifest["content_hash"] == local["content_hash"] and manifest["files"] == local["files"]
        again = build("--output", url, "--verify", cwd=tmp_path)
        assert again.returncode == 0 and "already holds this build" in again.stdout, again.stderr[-2000:]
