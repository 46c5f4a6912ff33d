"""A Hub that goes away for a while, cuts connections or answers 503/429, and one whose name does not resolve:
publishing recovers within --retry-seconds or stops at once with one clear line, and never shows the token.

Against the loopback Hub of tests/hub_server.py (real sockets: an outage closes its listening socket, so
connections are refused, then listens again on the same port)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from huggingface_hub import HfApi, constants

from pipelines.publish import HubOutage, PublishError, is_retryable, publish, unresolved_host
from tests.conftest import REPO_ROOT
from tests.hub_server import HubServer
from tests.pipelines.test_publish import TOKEN, assert_published

BOUND = 2.0  # --retry-seconds of these tests
HTTP_TIMEOUT = 0.5  # seconds the loopback Hub may leave a request unanswered (the default is a minute)
OUTCOMES: dict[str, bool] = {}  # case: recovered or failed clearly


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    yield
    done = sum(OUTCOMES.values())
    line = f"hub outage cases recovered or failed clearly: {done} of {len(OUTCOMES)}"
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():  # shown, also without -s
        print(f"\n{line}")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as server:
        yield server


def push(folder, endpoint: str, retry_seconds: float = BOUND, **kwargs) -> tuple[dict, list[str]]:
    lines: list[str] = []
    result = publish(folder, "org/bayling", api=HfApi(endpoint=endpoint, token=TOKEN), retry_seconds=retry_seconds,
                     backoff=0.05, log=lines.append, http_timeout=HTTP_TIMEOUT, **kwargs)  # fmt: skip
    return result, lines


def tags(hub) -> dict:
    """The repository's tags ({} where it was never created)."""
    path = hub.store._repo_file("dataset", "org/bayling")
    return hub.store.load("dataset", "org/bayling")["tags"] if path.is_file() else {}


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and TOKEN[3:] not in text


RECOVERABLE = {  # fail(method, pattern, action, times, **options): each ends before the bound
    "hub down 1 s from the first LFS upload": ("PUT", r"/lfs-upload/", "outage", 1, {"seconds": 1.0}),
    "hub down 1 s from the commit": ("POST", r"/commit/", "outage", 1, {"seconds": 1.0}),
    "hub down 1 s from the tag": ("POST", r"/tag/", "outage", 1, {"seconds": 1.0}),
    "connections reset mid-upload": ("PUT", r"/lfs-upload/", "reset", 3, {}),
    "connection reset mid-commit": ("POST", r"/commit/", "reset", 1, {}),
    "503 for the next 6 requests": ("*", r".", 503, 6, {}),
    "429 with Retry-After: 1 on the commit": ("POST", r"/commit/", 429, 1, {"retry_after": 1}),
    "the branch moved under the commit (412)": ("POST", r"/commit/", 412, 1, {}),
    "the commit request never answered": ("POST", r"/commit/", "hang", 1, {}),
    "an LFS upload never answered": ("PUT", r"/lfs-upload/", "hang", 1, {}),
}


@pytest.mark.parametrize("case", RECOVERABLE, ids=list(RECOVERABLE))
def test_a_short_outage_is_ridden_out(small_build, hub, case, capfd, caplog):
    method, pattern, action, times, options = RECOVERABLE[case]
    OUTCOMES[case] = False
    hub.fail(method, pattern, action, times, **options)
    result, lines = push(small_build, hub.url)
    assert any(outcome in (action, "down") for _, _, outcome in hub.events)  # the fault happened
    assert any("retrying in" in line for line in lines)  # and was retried by us, not by huggingface_hub
    commit = assert_published(hub, small_build)  # the tag holds exactly the version's files
    assert result["commit"] == commit
    repo = hub.store.load("dataset", "org/bayling")
    assert len(repo["commits"]) == 2 and repo["tags"] == {"v1.0.0": commit}  # no commit applied twice, one tag
    if options.get("retry_after"):
        assert any("retrying in 1.0 s" in line for line in lines)  # the Hub's Retry-After, not our backoff
    out, err = capfd.readouterr()
    assert_no_token(out, err, caplog.text, *lines)
    OUTCOMES[case] = True


LASTING = {  # each outlasts the bound
    "hub down for good from the first LFS upload": ("PUT", r"/lfs-upload/", "outage", 1, {"seconds": None}),
    "503 on every commit": ("POST", r"/commit/", 503, 10_000, {}),
    "hub down for good from the first request": ("GET", r".", "outage", 1, {"seconds": None}),
    "hub accepts connections and never answers": ("*", r".", "hang", 10_000, {}),
}


@pytest.mark.parametrize("case", LASTING, ids=list(LASTING))
def test_an_outage_longer_than_the_bound_stops_clearly(small_build, hub, case, capfd, caplog):
    method, pattern, action, times, options = LASTING[case]
    OUTCOMES[case] = False
    hub.fail(method, pattern, action, times, **options)
    with pytest.raises(PublishError) as raised:
        push(small_build, hub.url)
    message = str(raised.value)
    # the bound is what ended it (a push that hung for good would meet the suite's timeout instead)
    assert "\n" not in message and f"still failing after" in message and f"the bound of --retry-seconds {BOUND:g}" in message, message
    assert tags(hub) == {}
    out, err = capfd.readouterr()
    assert_no_token(out, err, caplog.text, message, repr(raised.value))
    OUTCOMES[case] = True


def test_a_retry_after_beyond_the_bound_stops_at_once(small_build, hub):
    OUTCOMES["429 asking for more time than the bound"] = False
    hub.fail("POST", r"/commit/", 429, 1, retry_after=600)
    # "more than ... left": it gave up at the first answer, before the bound ran out (then it would say "still failing")
    with pytest.raises(PublishError, match=r"asks to wait 600 s \(Retry-After\), more than .* left of --retry-seconds 2"):
        push(small_build, hub.url)
    assert tags(hub) == {}
    OUTCOMES["429 asking for more time than the bound"] = True


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "push"])
def test_a_host_that_does_not_resolve_fails_at_once(small_build, dry_run, capfd, caplog):
    case = f"unresolvable host ({'dry run' if dry_run else 'push'})"
    OUTCOMES[case] = False
    with pytest.raises(PublishError) as raised:
        push(small_build, "http://nonexistent.invalid:1", retry_seconds=300, dry_run=dry_run)  # not the bound: at once
    message = str(raised.value)
    assert "cannot resolve the host 'nonexistent.invalid'" in message and "\n" not in message, message
    out, err = capfd.readouterr()
    assert "retrying" not in out + err + caplog.text, "a name that does not resolve was retried"
    assert_no_token(out, err, caplog.text, message, repr(raised.value))
    OUTCOMES[case] = True


def test_the_command_line_says_which_host_in_one_line(small_build, tmp_path):
    OUTCOMES["unresolvable host (command line)"] = False
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": "http://nonexistent.invalid:1", "HF_TOKEN": TOKEN,
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home")}  # fmt: skip
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "publish.py"), str(small_build), "--repo-id", "org/bayling",
               "--dry-run", "--retry-seconds", "300"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr  # one line
    assert "cannot resolve the host 'nonexistent.invalid'" in done.stderr
    assert_no_token(done.stdout, done.stderr)
    OUTCOMES["unresolvable host (command line)"] = True


def test_wrapped_and_closed_client_errors_are_told_apart():
    """What huggingface_hub raises around a failed LFS upload: retried where the cause is passing, not where a
    name does not resolve."""
    closed = httpx.Client()
    closed.close()
    with pytest.raises(RuntimeError) as raised:
        closed.get("http://127.0.0.1:1/")
    try:  # huggingface_hub's _upload_lfs_files wraps each upload error so
        raise RuntimeError("Error while uploading 'data/x.parquet' to the Hub.") from raised.value
    except RuntimeError as e:
        assert is_retryable(e)
    with pytest.raises(httpx.ConnectError) as unresolvable:
        httpx.get("http://nonexistent.invalid:1/")
    try:
        raise RuntimeError("Error while uploading 'data/x.parquet' to the Hub.") from unresolvable.value
    except RuntimeError as e:
        assert not is_retryable(e) and unresolved_host(e).host == "nonexistent.invalid"
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get("http://127.0.0.1:1/")  # nothing listens on port 1
    assert is_retryable(refused.value) and is_retryable(HubOutage("503"))
    assert not is_retryable(ValueError("a bad file"))
