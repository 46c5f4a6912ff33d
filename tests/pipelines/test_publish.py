"""Publishing versions to the Hub, against the loopback Hub of tests/hub_server.py (Xet off: HF_HUB_DISABLE_XET)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import polars as pl
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, constants

from pipelines import publish as publishing
from pipelines.manifest import read_manifest, write_manifest
from pipelines.publish import PublishError, publish
from tests.conftest import REPO_ROOT
from tests.hub_server import Fault, HubServer

TOKEN = "hf_loopbackSECRETtoken0123456789"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as server:
        yield server


def api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


def quiet_publish(hub, folder, repo_id="org/bayling", **kwargs):
    lines = []
    result = publish(folder, repo_id, api=api(hub), backoff=0.01, log=lines.append, **kwargs)
    return result, lines


def assert_published(hub, folder, repo_id="org/bayling"):
    """The tag exists and its commit holds exactly the version's files, byte for byte."""
    manifest = read_manifest(folder)
    refs = api(hub).list_repo_refs(repo_id, repo_type="dataset")
    tag = next(t for t in refs.tags if t.name == manifest["version"])
    repo = hub.store.load("dataset", repo_id)
    tree = repo["commits"][tag.target_commit]["tree"]
    expected = {e["path"]: e["sha256"] for e in manifest["files"]} | {"manifest.json": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()}
    assert {p: b["sha256"] for p, b in tree.items() if p != ".gitattributes"} == expected
    for path, sha in expected.items():
        assert hashlib.sha256(hub.store.object_path(tree[path]["sha256"]).read_bytes()).hexdigest() == sha
    return tag.target_commit


def requests(hub, method, fragment, since=0):
    return [e for e in hub.events[since:] if e[0] == method and fragment in e[1]]


FAULTS = {
    "connection dropped before the commit": ("POST", r"/commit/", "drop", 1),
    "connection dropped after the commit landed": ("POST", r"/commit/", "drop_after", 1),
    "500 on the commit": ("POST", r"/commit/", 500, 2),
    "429 on the commit": ("POST", r"/commit/", 429, 3),
    "503 on listing the tree": ("GET", r"/tree/", 503, 2),
    "connection dropped during an LFS upload": ("PUT", r"/lfs-upload/", "drop", 1),
    "500 on an LFS upload": ("PUT", r"/lfs-upload/", 500, 1),
    "429 on preupload": ("POST", r"/preupload/", 429, 1),
    "connection dropped on the tag": ("POST", r"/tag/", "drop_after", 1),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_push_survives_faults(small_build, hub, fault):
    method, pattern, action, times = FAULTS[fault]
    hub.fail(method, pattern, action, times)
    result, _ = quiet_publish(hub, small_build)  # huggingface_hub retries some itself (LFS uploads), we the rest
    assert any(outcome in ("dropped", action) for m, _, outcome in hub.events if m == method)  # the fault happened
    commit = assert_published(hub, small_build)
    assert result["commit"] == commit
    commits = hub.store.load("dataset", "org/bayling")["commits"]
    assert len(commits) == 2  # the repository's first commit and ours: a lost answer did not make a second one


def test_no_tag_before_verification(small_build, hub):
    hub.fail("POST", r"/commit/", "lose_file", 1)  # the Hub accepts the commit but one file is not in it
    result, lines = quiet_publish(hub, small_build)
    assert result["commits"] == 2  # the file the Hub lost was noticed in its tree and sent again
    commit = assert_published(hub, small_build)
    tag_at = next(i for i, e in enumerate(hub.events) if e[0] == "POST" and "/tag/" in e[1])
    verified_at = max(i for i, e in enumerate(hub.events) if e[0] == "GET" and f"/tree/{commit}" in e[1])
    assert verified_at < tag_at
    assert len(requests(hub, "POST", "/tag/")) == 1


def test_no_tag_when_the_files_never_match(small_build, hub):
    hub.fail("POST", r"/commit/", "lose_file", 100)
    with pytest.raises(PublishError, match="no tag was created"):
        quiet_publish(hub, small_build)
    assert api(hub).list_repo_refs("org/bayling", repo_type="dataset").tags == []
    assert not requests(hub, "POST", "/tag/")


def test_an_interrupted_push_resumes_without_resending(small_build, hub, monkeypatch):
    monkeypatch.setattr(publishing, "MAX_FILES_PER_COMMIT", 4)
    # the third commit is refused for good (a 403 is not retried): the push stops part-way, with no tag
    original = hub.take_fault
    commits = {"n": 0}

    def third_commit_fails(method, path):
        if method == "POST" and "/commit/" in path:
            commits["n"] += 1
            if commits["n"] == 3:
                return Fault(method, re.compile(""), 403, 1)
        return original(method, path)

    monkeypatch.setattr(hub, "take_fault", third_commit_fails)
    with pytest.raises(PublishError, match="a rerun resumes"):
        quiet_publish(hub, small_build)
    assert api(hub).list_repo_refs("org/bayling", repo_type="dataset").tags == []
    first_run = len(hub.events)
    uploaded = {e[1].rsplit("/", 1)[1] for e in requests(hub, "PUT", "/lfs-upload/")}
    repo = hub.store.load("dataset", "org/bayling")
    landed = set(repo["commits"][repo["branches"]["main"]]["tree"]) - {".gitattributes"}
    assert len(landed) == 8 and "manifest.json" not in landed and "README.md" not in landed  # those go last

    result, _ = quiet_publish(hub, small_build)
    assert_published(hub, small_build)
    assert not set(result["sent"]) & landed  # what had landed was not sent again
    resent = {e[1].rsplit("/", 1)[1] for e in requests(hub, "PUT", "/lfs-upload/", since=first_run)}
    assert not resent & uploaded  # nor were LFS objects the Hub already had (those of the refused commit included)


def test_a_second_push_of_the_same_version_is_a_noop(small_build, hub):
    quiet_publish(hub, small_build)
    before = len(hub.events)
    result, lines = quiet_publish(hub, small_build)
    assert result["commits"] == 0 and result["sent"] == []
    assert "nothing to do" in lines[-1]
    assert all(method == "GET" for method, _, _ in hub.events[before:])  # read only: no upload, commit or tag


def test_a_tag_is_never_moved_to_other_content(small_build, hub, tmp_path):
    quiet_publish(hub, small_build)
    changed = tmp_path / "changed"
    shutil.copytree(small_build, changed)
    manifest = read_manifest(changed)
    dropped = next(e for e in manifest["files"] if e["path"].startswith("data/yor_Latn/"))
    (changed / dropped["path"]).unlink()
    manifest["files"].remove(dropped)
    write_manifest(changed, manifest)  # same version id, other content
    with pytest.raises(PublishError, match="never changed"):
        quiet_publish(hub, changed)
    assert_published(hub, small_build)


def test_a_new_version_replaces_the_files_of_the_branch(small_build, hub, tmp_path):
    first = quiet_publish(hub, small_build)[0]["commit"]
    newer = tmp_path / "v1.1.0"
    shutil.copytree(small_build, newer)
    manifest = read_manifest(newer)
    dropped = [e for e in manifest["files"] if e["path"].startswith("data/yor_Latn/")]
    for entry in dropped:
        (newer / entry["path"]).unlink()
        manifest["files"].remove(entry)
    manifest["version"] = "v1.1.0"
    write_manifest(newer, manifest)
    result, _ = quiet_publish(hub, newer)
    assert assert_published(hub, newer) == result["commit"] != first  # the old shards were deleted from the branch
    assert assert_published(hub, small_build) == first  # and v1.0.0 still has them


def test_a_card_the_hub_rejects_stops_the_push_before_any_tag(small_build, hub, tmp_path):
    bad = tmp_path / "bad-card"
    shutil.copytree(small_build, bad)
    card = (bad / "README.md").read_text().replace("- 1K<n<10K", "- lots")
    (bad / "README.md").write_text(card)
    manifest = read_manifest(bad)
    next(e for e in manifest["files"] if e["path"] == "README.md")["sha256"] = hashlib.sha256(card.encode()).hexdigest()
    write_manifest(bad, manifest)
    with pytest.raises(PublishError, match="size_categories"):
        quiet_publish(hub, bad)
    assert api(hub).list_repo_refs("org/bayling", repo_type="dataset").tags == []


def test_a_changed_version_folder_is_not_published(small_build, hub, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(small_build, changed)
    (changed / "LICENSE").write_text("edited after the build\n")
    with pytest.raises(PublishError, match="LICENSE: its sha256 differs from the manifest"):
        quiet_publish(hub, changed)
    assert not hub.events or not requests(hub, "POST", "/commit/")


def test_dry_run_lists_and_sends_nothing(small_build, hub):
    result, lines = quiet_publish(hub, small_build, dry_run=True)
    files = len(read_manifest(small_build)["files"]) + 1
    assert f"{files} of {files} files to send" in lines[0] and "does not exist yet" in lines[0]
    assert any(line.strip().startswith("send   data/deu_Latn/train-00000-of-00001.parquet") for line in lines)
    assert all(method == "GET" for method, _, _ in hub.events)
    # after a partial push, it lists only what is missing
    hub.fail("POST", r"/commit/", 403, 1)
    with pytest.raises(PublishError):
        quiet_publish(hub, small_build)
    _, lines = quiet_publish(hub, small_build, dry_run=True)
    assert f"{files} of {files} files to send" in lines[0] and "branch main" in lines[0]


def load_back(hub, repo_id, configs, revision, tmp_path) -> dict:
    """datasets.load_dataset of each config against the loopback Hub, in a fresh process (HF_ENDPOINT is read at
    import); {config: {split: table}}."""
    code = (
        "import datasets, sys, pyarrow.parquet as pq\n"
        f"for config in {configs!r}:\n"
        f"    loaded = datasets.load_dataset({repo_id!r}, config, revision={revision!r}, cache_dir=sys.argv[1])\n"
        "    for split, rows in loaded.items():\n"
        "        pq.write_table(rows.data.table, f'{sys.argv[2]}/{config}-{split}.parquet')\n"
        "import hashlib, json, huggingface_hub\n"  # and every file of the tag, as downloaded
        f"files = huggingface_hub.list_repo_files({repo_id!r}, repo_type='dataset', revision={revision!r})\n"
        f"got = {{f: hashlib.sha256(open(huggingface_hub.hf_hub_download({repo_id!r}, f, repo_type='dataset', revision={revision!r}), 'rb').read()).hexdigest() for f in files}}\n"
        "open(f'{sys.argv[2]}/sha256.json', 'w').write(json.dumps(got))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    (tmp_path / "loaded").mkdir()
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache"), str(tmp_path / "loaded")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    tables = {config: {split: pq.read_table(tmp_path / "loaded" / f"{config}-{split}.parquet") for split in ("train", "validation", "test")
                       if (tmp_path / "loaded" / f"{config}-{split}.parquet").exists()} for config in configs}  # fmt: skip
    return tables, json.loads((tmp_path / "loaded" / "sha256.json").read_text())


@pytest.mark.slow
def test_publish_cli_then_load_back_the_same_rows(small_build, hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    hub.fail("POST", r"/commit/", 500, 1)
    hub.fail("POST", r"/repos/create", 429, 1)
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "publish.py"), str(small_build), "--repo-id", "org/bayling"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "published org/bayling@v1.0.0" in done.stdout
    failed = subprocess.run([*command[:-1], "bad/name/x"], env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    for text in (done.stdout, done.stderr, failed.stdout, failed.stderr, (small_build / "manifest.json").read_text()):
        assert TOKEN not in text and TOKEN[3:] not in text

    manifest = read_manifest(small_build)
    tables, downloaded = load_back(hub, "org/bayling", ["all", "deu_Latn", "cross_lingual"], "v1.0.0", tmp_path)
    expected = {e["path"]: e["sha256"] for e in manifest["files"]}
    expected["manifest.json"] = hashlib.sha256((small_build / "manifest.json").read_bytes()).hexdigest()
    assert {path: sha for path, sha in downloaded.items() if path != ".gitattributes"} == expected  # the very same bytes
    for config, loaded in tables.items():
        folder = config if config == "deu_Latn" else "*"  # all and cross_lingual: the same here (no zh/en rows)
        for split, table in loaded.items():
            local = pl.read_parquet(small_build / "data" / folder / f"{split}-*.parquet").sort("id")
            back = pl.from_arrow(table).sort("id")
            assert back.columns == local.columns and back.equals(local), (config, split)  # the very same rows and values
        rows = manifest["rows_per_config"]["deu_Latn"] if config == "deu_Latn" else manifest["rows_per_split"]
        assert {split: t.num_rows for split, t in loaded.items()} == rows


def test_build_push_to_hub(small_build, hub, monkeypatch, capsys):
    from pipelines.build import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(publishing.Publisher, "wait", lambda self, what, error, delay: None)
    hub.fail("POST", r"/commit/", "drop", 1)
    from tests.conftest import SMALL_LANGS

    assert main(["--langs", SMALL_LANGS, "--output", str(small_build), "--push-to-hub", "org/pushed", "--private"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "published org/pushed@v1.0.0" in out
    assert_published(hub, small_build, "org/pushed")
    assert hub.store.load("dataset", "org/pushed")["private"]
    assert json.dumps(read_manifest(small_build)).find(TOKEN) == -1
