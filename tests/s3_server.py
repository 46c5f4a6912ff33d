"""A real S3 server for the tests: moto's server mode (`ThreadedMotoServer`) on a free loopback port, reached over
HTTP by s3fs/botocore like any S3 endpoint. Nothing is mocked: requests go through the network stack and moto's
S3 implementation (conditional writes included)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Fake credentials, but distinctive: a test can look for them in what a build wrote.
ACCESS_KEY = "AKIATESTBAYLINGFAKE01"
SECRET_KEY = "bayling-test-secret-" + "x" * 20


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True)  # endpoint and credentials from the environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start the server, point the AWS_* environment at it (restored after) and create a bucket."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ENDPOINT_URL": endpoint,
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        bucket = f"bayling-{uuid.uuid4().hex[:8]}"
        S3Server(endpoint, bucket).filesystem().mkdir(bucket)
        yield S3Server(endpoint, bucket)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
