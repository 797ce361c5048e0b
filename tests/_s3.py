"""A local S3 server for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1, a free port.

Fixtures (registered in ``tests/conftest.py``, so every test folder can use them):

* ``s3_server``: the endpoint URL of the server, started once per test session.
* ``s3_store_url``: ``s3://<a fresh bucket>/photos``, with the standard AWS variables (fake credentials, region,
  ``AWS_ENDPOINT_URL_S3``) set for the test, so ``open_photo_store(s3_store_url)`` reaches the server as a
  deployment would reach MinIO or AWS.

Skipped when moto is not installed (``pip install 'roomscan[test]'``).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

REGION = "us-east-1"
FAKE_KEY = "roomscan-test-key"
FAKE_SECRET = "roomscan-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client of the test server, for arranging and inspecting buckets."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_SECRET,
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    server_module = pytest.importorskip("moto.server", reason="S3 tests need moto[server]: pip install 'roomscan[test]'")
    pytest.importorskip("s3fs", reason="S3 tests need s3fs: pip install 'roomscan[storage]'")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store_url(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    # Only the variables below: no profile, config file or real credentials of whoever runs the tests.
    nowhere = tmp_path_factory.mktemp("aws") / "absent"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    bucket = f"roomscan-{uuid.uuid4().hex[:12]}"
    s3_client(s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/photos"
