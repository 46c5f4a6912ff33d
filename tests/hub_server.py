"""A loopback Hugging Face Hub for the tests: the part of the Hub HTTP API that huggingface_hub (and `datasets`
through it) uses to create a dataset repository, upload (preupload, LFS batch + basic transfer, ndjson commits),
list (tree, paths-info, refs, repo info), tag and branch, validate a card's YAML, and download (resolve, with
ranges). State is kept on disk: content-addressed objects and one JSON file per repository with its commits,
branches and tags, so a server restarted on the same folder serves the same repositories.

Xet storage is not implemented: clients must run with HF_HUB_DISABLE_XET=1 (the LFS batch API here only offers the
"basic" transfer, which huggingface_hub uses when Xet is off).

Faults are injected per request: `server.fail(method, path_pattern, action, times)` (method "*": any) where action
is an HTTP status (429 answers with Retry-After: `retry_after`, 0 unless given), "drop" (read the request, close the
connection without an answer), "drop_after" (handle the request, commit included, then close without an answer),
"reset" (read half the request's body, then reset the connection: a TCP RST), "outage" (the Hub goes away: see
`go_down`, for `seconds`), "hang" (read the request, then never answer: for `seconds`, or until the server
closes) or "lose_file" (a commit is accepted but its first added file is left out, so only a
check of the tree afterwards can notice). `server.go_down(seconds)` closes the listening socket and every open
connection, so that connections are refused, and listens again on the same port after `seconds` (never: None).
`server.events` records every request with its answer, in order.

Gated repositories: `server.gate(repo_id, tokens)` makes downloads of a repository's files (resolve) answer 401
without a token and 403 with a token not in `tokens` (the users who accepted its terms), with the Hub's error code
GatedRepo; its info and file list stay public, with "gated": "auto", as on the Hub.

    with HubServer(tmp_path) as hub:
        HfApi(endpoint=hub.url, token="hf_test").create_repo("org/name", repo_type="dataset")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_PATTERNS = re.compile(r"\.(parquet|png|arrow|bin|safetensors|zst|gz)$")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    action: str | int
    times: int
    retry_after: float = 0
    seconds: float | None = None


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Store:
    """Repositories on disk. A commit is a full tree: {path: {sha256, sha1, size, lfs}}."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / f"{repo_id.replace('/', '--')}.json"

    def load(self, repo_type: str, repo_id: str) -> dict:
        path = self._repo_file(repo_type, repo_id)
        if not path.is_file():
            raise HttpError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return json.loads(path.read_text())

    def save(self, repo_type: str, repo_id: str, repo: dict) -> None:
        path = self._repo_file(repo_type, repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo))
        tmp.replace(path)

    def put_object(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / sha256
        if not path.exists():
            tmp = path.with_name(f"{sha256}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha256

    def has_object(self, sha256: str) -> bool:
        return (self.root / "objects" / sha256).is_file()

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    @staticmethod
    def resolve(repo: dict, revision: str) -> str:
        revision = unquote(revision)
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if revision in repo["tags"]:
            return repo["tags"][revision]
        if revision in repo["commits"]:
            return revision
        raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def new_commit(repo: dict, parent: str | None, tree: dict, message: str) -> str:
        body = json.dumps({"parent": parent, "tree": tree, "message": message, "n": len(repo["commits"])}, sort_keys=True)
        oid = hashlib.sha1(body.encode()).hexdigest()
        repo["commits"][oid] = {"parent": parent, "tree": tree, "message": message, "time": time.time()}
        return oid


class HubServer:
    def __init__(self, root: Path, host: str = "127.0.0.1"):
        self.store = Store(root)
        self.faults: list[Fault] = []
        self.events: list[tuple[str, str, int | str]] = []
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.closed = False
        self.closing = threading.Event()  # set on exit: releases the handlers of "hang" faults
        self.restart: threading.Timer | None = None
        server = self

        class Handler(HubHandler):
            hub = server

        self.handler = Handler
        self.host = host
        self.httpd: ThreadingHTTPServer | None = self.listen(0)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"

    def listen(self, port: int) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer((self.host, port), self.handler)  # allow_reuse_address: the same port again
        httpd.daemon_threads = True
        return httpd

    def serve(self) -> None:
        # shutdown() (end of a test, or an outage) returns only once serve_forever next polls: poll often
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> HubServer:
        self.serve()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        with self.lock:
            self.closed = True
            if self.restart is not None:
                self.restart.cancel()
        self.stop_listening()

    def stop_listening(self) -> None:
        with self.lock:
            httpd, self.httpd = self.httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def go_down(self, seconds: float | None) -> None:
        """The Hub goes away: connections are refused (nothing listens on the port) and open ones are cut; after
        `seconds` it listens on the same port again, with the same repositories."""
        self.stop_listening()
        with self.lock:
            open_connections = list(self.connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.record("-", "hub down", "down")
        if seconds is not None:
            with self.lock:
                self.restart = threading.Timer(seconds, self.come_back)
                self.restart.daemon = True
                self.restart.start()

    def come_back(self) -> None:
        with self.lock:
            if self.closed or self.httpd is not None:
                return
            self.httpd = self.listen(self.port)
        self.record("-", "hub up", "up")
        self.serve()

    def fail(self, method: str, pattern: str, action: str | int, times: int = 1, *, retry_after: float = 0,
             seconds: float | None = None) -> None:  # fmt: skip
        with self.lock:
            self.faults.append(Fault(method, re.compile(pattern), action, times, retry_after, seconds))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times and fault.method in (method, "*") and fault.pattern.search(path):
                    fault.times -= 1
                    return fault
        return None

    def gate(self, repo_id: str, tokens: list[str], repo_type: str = "dataset") -> None:
        """Only requests with one of `tokens` (users who accepted the terms) may read the repository's files."""
        with self.store.lock:
            repo = self.store.load(repo_type, repo_id)
            repo["gated_tokens"] = list(tokens)
            self.store.save(repo_type, repo_id, repo)

    def record(self, method: str, path: str, outcome) -> None:
        with self.lock:
            self.events.append((method, path, outcome))


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer's headers and body are separate writes: with Nagle's algorithm the body would wait for the client's
    # delayed ACK of the headers on every request of a kept-alive connection.
    disable_nagle_algorithm = True
    hub: HubServer

    def log_message(self, *args) -> None:  # quiet: the tests read `events`
        pass

    def setup(self) -> None:
        super().setup()
        with self.hub.lock:
            self.hub.connections.add(self.connection)

    def finish(self) -> None:
        with self.hub.lock:
            self.hub.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # a connection the test cut
            pass

    # --- plumbing -------------------------------------------------------------------------------------------------
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        # recorded before the answer goes out: once a client has its answer, its request is in `events`
        self.hub.record(self.command, self.path, status)
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def drop(self) -> None:
        self.hub.record(self.command, self.path, "dropped")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def reset(self) -> None:
        """Read half the body (the client is mid-request), then close with SO_LINGER 0: the peer gets a RST."""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length // 2)
        self.hub.record(self.command, self.path, "reset")
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def handle_any(self) -> None:
        path = urlsplit(self.path).path
        fault = self.hub.take_fault(self.command, path)
        action = fault.action if fault else None
        if action == "reset":
            return self.reset()
        if action == "outage":
            self.hub.record(self.command, self.path, "outage")
            self.close_connection = True
            return self.hub.go_down(fault.seconds)
        body = self.body()
        if action == "hang":  # the request was read; no answer comes (for `seconds`, or until the hub closes)
            self.hub.record(self.command, self.path, "hang")
            self.hub.closing.wait(fault.seconds)
            return self.drop()
        if action == "drop":
            return self.drop()
        if isinstance(action, int):
            headers = {"Retry-After": f"{fault.retry_after:g}"} if action == 429 else None
            return self.send(action, {"error": f"injected {action}"}, headers)
        self.lose_file = action == "lose_file"
        try:
            status, payload, headers, raw = self.route(path, body)
        except HttpError as e:
            status, payload, headers, raw = e.status, {"error": e.message}, ({"X-Error-Code": e.code} if e.code else {}), None
        if action == "drop_after":
            return self.drop()
        self.send(status, payload, headers, raw)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any

    # --- routes ---------------------------------------------------------------------------------------------------
    def route(self, path: str, body: bytes):
        query = parse_qs(urlsplit(self.path).query)
        if path == "/api/repos/create" and self.command == "POST":
            return self.create_repo(json.loads(body))
        if path == "/api/validate-yaml" and self.command == "POST":
            return self.validate_yaml(json.loads(body))
        if path == "/api/whoami-v2":
            return 200, {"name": "tester", "type": "user", "orgs": [], "auth": {"accessToken": {"role": "write"}}}, None, None
        m = re.fullmatch(r"/api/(dataset|model|space)s/([^/]+/[^/]+)(?:/([a-z-]+)(?:/([^/]+))?(/.*)?)?", path)
        if m:
            repo_type, repo_id, action, revision, rest = m.groups()
            rest = unquote(rest[1:]) if rest else ""
            with self.hub.store.lock:
                repo = self.hub.store.load(repo_type, repo_id)
                if action is None or action == "revision":
                    return self.repo_info(repo_type, repo_id, repo, revision or "main")
                if action == "refs":
                    return self.refs(repo)
                if action == "tree":
                    return self.tree(repo, revision or "main", rest, query.get("recursive", ["False"])[0].lower() == "true")
                if action == "paths-info":
                    return self.paths_info(repo, revision, parse_qs(body.decode()))
                if action == "preupload":
                    return self.preupload(repo, revision, json.loads(body))
                if action == "commit":
                    return self.commit(repo_type, repo_id, repo, unquote(revision), body)
                if action == "tag":
                    return self.tag(repo_type, repo_id, repo, revision, json.loads(body or b"{}"))
                if action == "branch":
                    return self.branch(repo_type, repo_id, repo, unquote(revision), json.loads(body or b"{}"))
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+?)\.git/info/lfs/objects/batch", path)
        if m:
            return self.lfs_batch(json.loads(body))
        m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if m and self.command == "PUT":
            if hashlib.sha256(body).hexdigest() != m.group(1):
                raise HttpError(400, "uploaded content does not match its oid")
            self.hub.store.put_object(body)
            return 200, {}, None, None
        m = re.fullmatch(r"/lfs-verify", path)
        if m:
            request = json.loads(body)
            ok = self.hub.store.has_object(request["oid"]) and self.hub.store.object_path(request["oid"]).stat().st_size == request["size"]
            return (200, {}, None, None) if ok else (404, {"error": "object not uploaded"}, None, None)
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            kind, repo_id, revision, file_path = m.groups()
            return self.resolve(kind[:-1] if kind else "model", repo_id, revision, unquote(file_path))
        raise HttpError(404, f"no route for {self.command} {path}")

    def check_gate(self, repo: dict) -> None:
        """A gated repository's files: 401 without a token, 403 with one that did not accept the terms."""
        if "gated_tokens" not in repo:
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token not in repo["gated_tokens"]:
            status = 403 if token else 401
            raise HttpError(status, "Access to this dataset is restricted: you must accept its conditions", "GatedRepo")

    def create_repo(self, request: dict):
        repo_type = request.get("type") or "model"
        repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else f"tester/{request['name']}"
        store = self.hub.store
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = {"url": f"{self.hub.url}/{prefix}{repo_id}", "name": repo_id, "id": repo_id}
        with store.lock:
            if store._repo_file(repo_type, repo_id).is_file():  # the Hub's 409 names the repository too
                return 409, {"error": "You already created this repo", **url}, None, None
            repo = {"private": request.get("visibility") == "private" or bool(request.get("private")), "commits": {}, "branches": {}, "tags": {}}
            sha = store.put_object(GITATTRIBUTES)
            tree = {".gitattributes": {"sha256": sha, "sha1": git_blob_sha1(GITATTRIBUTES), "size": len(GITATTRIBUTES), "lfs": False}}
            repo["branches"]["main"] = store.new_commit(repo, None, tree, "initial commit")
            store.save(repo_type, repo_id, repo)
        return 200, url, None, None

    def validate_yaml(self, request: dict):
        """The checks the Hub makes that a card of ours could fail: YAML mapping, known size categories, language
        codes as strings, configs with names and data files."""
        match = re.match(r"^---\n(.*?)\n---\n", request["content"], re.S)
        errors = []
        try:
            data = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as e:
            return 400, {"errors": [{"message": f"invalid YAML: {e}"}]}, None, None
        if not isinstance(data, dict):
            errors.append("metadata must be a mapping")
        else:
            for value in data.get("size_categories", []):
                if value not in SIZE_CATEGORIES:
                    errors.append(f"size_categories: unknown value {value!r}")
            if not all(isinstance(code, str) and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", code) for code in data.get("language", [])):
                errors.append("language: must be a list of ISO 639 codes")
            names = [c.get("config_name") for c in data.get("configs", [])]
            if len(set(names)) != len(names) or not all(names):
                errors.append("configs: every config needs a unique config_name")
            if sum(bool(c.get("default")) for c in data.get("configs", [])) > 1:
                errors.append("configs: at most one default config")
        if errors:
            return 400, {"errors": [{"message": e} for e in errors]}, None, None
        return 200, {"errors": [], "warnings": []}, None, None

    def entry(self, path: str, blob: dict) -> dict:
        entry = {"type": "file", "oid": blob["sha1"], "size": blob["size"], "path": path}
        if blob["lfs"]:
            entry["lfs"] = {"oid": blob["sha256"], "size": blob["size"], "pointerSize": 134}
        return entry

    def repo_info(self, repo_type: str, repo_id: str, repo: dict, revision: str):
        sha = self.hub.store.resolve(repo, revision)
        tree = repo["commits"][sha]["tree"]
        return 200, {"id": repo_id, "_id": repo_id, "sha": sha, "private": repo["private"], "disabled": False,
                     "gated": "auto" if "gated_tokens" in repo else False,
                     "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                     "siblings": [{"rfilename": p} for p in sorted(tree)]}, None, None  # fmt: skip

    def refs(self, repo: dict):
        def ref(kind, name, sha):
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

        return 200, {"branches": [ref("heads", n, s) for n, s in sorted(repo["branches"].items())],
                     "tags": [ref("tags", n, s) for n, s in sorted(repo["tags"].items())], "converts": [], "pullRequests": []}, None, None  # fmt: skip

    def tree(self, repo: dict, revision: str, folder: str, recursive: bool):
        tree = repo["commits"][self.hub.store.resolve(repo, revision)]["tree"]
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in tree):
            raise HttpError(404, f"{folder} does not exist", "EntryNotFound")
        entries, folders = [], set()
        for path in sorted(tree):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                entries.append(self.entry(path, tree[path]))
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f} for f in sorted(folders)]
        return 200, entries, None, None

    def paths_info(self, repo: dict, revision: str, form: dict):
        tree = repo["commits"][self.hub.store.resolve(repo, revision)]["tree"]
        found = []
        for path in form.get("paths", []):
            if path in tree:
                found.append(self.entry(path, tree[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in tree):
                found.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path})
        return 200, found, None, None

    def preupload(self, repo: dict, revision: str, request: dict):
        tree = repo["commits"][self.hub.store.resolve(repo, revision)]["tree"]
        files = []
        for f in request["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = bool(LFS_PATTERNS.search(f["path"])) or f["size"] > 10_000_000 or b"\0" in sample
            blob = tree.get(f["path"])
            oid = (blob["sha256"] if blob["lfs"] else blob["sha1"]) if blob else None
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return 200, {"files": files, "commitOid": self.hub.store.resolve(repo, revision)}, None, None

    def lfs_batch(self, request: dict):
        objects = []
        for obj in request["objects"]:
            if self.hub.store.has_object(obj["oid"]):
                objects.append({"oid": obj["oid"], "size": obj["size"]})  # no actions: already uploaded
            else:
                objects.append({"oid": obj["oid"], "size": obj["size"], "authenticated": True,
                                "actions": {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                                            "verify": {"href": f"{self.hub.url}/lfs-verify", "header": {}}}})  # fmt: skip
        return 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}, None

    def commit(self, repo_type: str, repo_id: str, repo: dict, revision: str, body: bytes):
        if revision not in repo["branches"]:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        store = self.hub.store
        head = repo["branches"][revision]
        tree = dict(repo["commits"][head]["tree"])
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = lines[0]["value"] if lines and lines[0]["key"] == "header" else {}
        if header.get("parentCommit") and header["parentCommit"] != head:
            raise HttpError(412, "A commit has happened since. Please refresh and try again.")
        lost = self.lose_file
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key in ("file", "lfsFile") and lost:
                lost = False  # the injected fault: accept the commit, leave this file out
                continue
            if key == "file":
                data = base64.b64decode(value["content"])
                tree[value["path"]] = {"sha256": store.put_object(data), "sha1": git_blob_sha1(data), "size": len(data), "lfs": False}
            elif key == "lfsFile":
                if not store.has_object(value["oid"]):
                    raise HttpError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                data = store.object_path(value["oid"]).read_bytes()
                tree[value["path"]] = {"sha256": value["oid"], "sha1": git_blob_sha1(data), "size": len(data), "lfs": True}
            elif key == "deletedFile":
                if value["path"] not in tree:
                    raise HttpError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del tree[value["path"]]
            elif key == "deletedFolder":
                for path in [p for p in tree if p.startswith(value["path"].rstrip("/") + "/")]:
                    del tree[path]
            else:
                raise HttpError(400, f"unknown commit line {key!r}")
        oid = store.new_commit(repo, head, tree, header.get("summary", ""))
        repo["branches"][revision] = oid
        store.save(repo_type, repo_id, repo)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return 200, {"success": True, "commitOid": oid, "commitUrl": f"{self.hub.url}/{prefix}{repo_id}/commit/{oid}", "pullRequestUrl": None}, None, None

    def tag(self, repo_type: str, repo_id: str, repo: dict, revision: str, request: dict):
        sha = self.hub.store.resolve(repo, revision)
        if request["tag"] in repo["tags"]:
            raise HttpError(409, f"Tag {request['tag']} already exists")
        repo["tags"][request["tag"]] = sha
        self.hub.store.save(repo_type, repo_id, repo)
        return 200, {}, None, None

    def branch(self, repo_type: str, repo_id: str, repo: dict, branch: str, request: dict):
        if branch in repo["branches"]:
            raise HttpError(409, f"Branch {branch} already exists")
        repo["branches"][branch] = self.hub.store.resolve(repo, request.get("startingPoint") or "main")
        self.hub.store.save(repo_type, repo_id, repo)
        return 200, {}, None, None

    def resolve(self, repo_type: str, repo_id: str, revision: str, path: str):
        store = self.hub.store
        with store.lock:
            repo = store.load(repo_type, repo_id)
            self.check_gate(repo)
            sha = store.resolve(repo, revision)
            blob = repo["commits"][sha]["tree"].get(path)
        if blob is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        data = store.object_path(blob["sha256"]).read_bytes()
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob["sha1"]}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if blob["lfs"]:
            headers.update({"X-Linked-Etag": f'"{blob["sha256"]}"', "X-Linked-Size": str(blob["size"])})
        status = 200
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if ranged and self.command == "GET":
            start = int(ranged.group(1)) if ranged.group(1) else max(0, len(data) - int(ranged.group(2)))
            end = int(ranged.group(2)) if ranged.group(1) and ranged.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        return status, None, headers, data
