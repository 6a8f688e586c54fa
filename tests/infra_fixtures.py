"""Session fixtures for the scaled-deployment tests: a local S3-compatible server (moto) and a
PostgreSQL cluster, each a real process on a free loopback port, started and stopped by its PID.

Both binaries are installed by ``make setup`` (infra/install.sh: ``moto[server]`` in the dev extra,
Debian ``postgresql``); a missing one fails the test with the command that installs it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

S3_ACCESS_KEY_ID = "workbench-test"
S3_SECRET_ACCESS_KEY = "workbench-test-secret"
S3_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} in {timeout:.0f} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible endpoint with fixed test credentials."""

    endpoint_url: str

    def client(self):
        """A boto3 S3 client for this endpoint."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY_ID, aws_secret_access_key=S3_SECRET_ACCESS_KEY,
        )

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name and return the name."""
        name = f"wb-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under a prefix."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def env(self) -> dict[str, str]:
        """The WORKBENCH_S3_* variables that point the workbench at this endpoint."""
        return {
            "WORKBENCH_S3_ENDPOINT_URL": self.endpoint_url,
            "WORKBENCH_S3_REGION": S3_REGION,
            "WORKBENCH_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
            "WORKBENCH_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """``moto_server`` (moto[server], in-memory S3) on a free loopback port for the session."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make setup` installs moto[server] with the dev extra")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, "moto_server", log)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL cluster that trusts local connections as the ``postgres`` superuser."""

    port: int
    user: str = "postgres"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database with a fresh name and return the name."""
        import psycopg

        name = f"wb_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        pytest.fail(f"{name} is missing: `make setup` installs Debian's postgresql")
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, the server on a free loopback port).

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system
    user (Debian's package creates it) or else ``nobody``; the processes drop to that user
    themselves, so the PID held here is the server's own.
    """
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    owner = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        if owner is None:
            pytest.fail("running as root, and neither a 'postgres' nor a 'nobody' user exists to own the cluster")
    # Not under pytest's tmp dirs: those are private to root, and the cluster's owner must reach it.
    root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    data, log = root / "data", root / "postgres.log"
    as_owner: dict = {}
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {**os.environ, "HOME": str(root), "LC_ALL": "C"}
    try:
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, env=env, cwd=root, **as_owner,
        )
        port = _free_port()
        with open(log, "ab") as out:
            if owner is not None:
                os.chown(log, owner.pw_uid, owner.pw_gid)
            # A test cluster: durability settings off, sockets in its own directory.
            proc = subprocess.Popen(
                [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(root),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, **as_owner,
            )
        try:
            _wait_for_port(proc, port, "postgres", log)
            server = PostgresServer(port)
            _wait_until_ready(server)
            yield server
        finally:
            _stop(proc, signal.SIGINT)  # SIGINT is PostgreSQL's fast shutdown
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(server: PostgresServer, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(host="127.0.0.1", port=server.port, user=server.user, dbname="postgres").close()
            return
        except psycopg.OperationalError:  # "the database system is starting up"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
