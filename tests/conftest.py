"""Shared, expensive fixtures: one PII redactor per session, one live API server per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra_fixtures import postgres_server, s3_server  # noqa: F401  (session fixtures: moto S3, PostgreSQL)
from workbench.config import Settings

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def redactor():
    """The real presidio + spaCy redactor, loaded once."""
    from workbench.data.redaction import Redactor

    return Redactor()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Where the base model is converted, once per session: $WORKBENCH_TEST_MODELS, else
    $WORKBENCH_HOME/models (what `make test` fills with `workbench models pull-base`), else a temp dir."""
    from workbench.agents import pull_base

    configured, home = os.environ.get("WORKBENCH_TEST_MODELS"), os.environ.get("WORKBENCH_HOME")
    directory = Path(configured) if configured else Path(home) / "models" if home else tmp_path_factory.mktemp("models")
    pull_base(directory)
    return directory


@pytest.fixture(scope="session")
def base_model_dir(models_dir: Path) -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint directory."""
    from workbench.agents import base_model_dir as located

    return located(models_dir)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh WORKBENCH_HOME."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def services(settings, redactor):
    """Real stores (SQLite, LanceDB, artifacts) in a temp home, sharing the session redactor."""
    from workbench.services import Services

    svc = Services(settings, redactor=redactor)
    yield svc
    svc.close()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A ``workbench serve`` subprocess on its own home and port."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "WORKBENCH_HOME": str(home), **(extra_env or {})}
        self.log = open(home.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> LiveServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "serve", "--port", str(self.port)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not answer /healthz in time")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def tenant(self, name: str) -> dict:
        """Create a tenant through the CLI (the way an operator does); returns its JSON."""
        import json

        out = subprocess.run(
            [sys.executable, "-m", "workbench", "tenants", "create", name],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return json.loads(out.stdout)

    def key(self, tenant_id: str, role: str) -> str:
        """Issue a key through the CLI."""
        import json

        out = subprocess.run(
            [sys.executable, "-m", "workbench", "keys", "create", "--tenant", tenant_id, "--role", role],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return json.loads(out.stdout)["api_key"]

    def client(self, api_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One real API server for the session (tests isolate themselves by tenant)."""
    home = tmp_path_factory.mktemp("live") / "home"
    home.mkdir()
    server = LiveServer(home).start()
    yield server
    server.stop()
