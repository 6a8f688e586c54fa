"""`make up` (infra/up.sh): the API, dagster-webserver and dagster-daemon on 127.0.0.1, the URLs printed,
the asset graph loaded, the daemon healthy, and Ctrl-C stopping all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAEMONS = '{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }'
ASSETS = '{ assetNodes { assetKey { path } groupName } }'


def _graphql(url: str, query: str) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def test_make_up_starts_and_stops_everything(tmp_path):
    api_port, ui_port = free_port(), free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"), "API_PORT": str(api_port),
           "DAGSTER_PORT": str(ui_port)}
    log = open(tmp_path / "up.log", "w+")  # noqa: SIM115
    # As from a terminal: SIGINT at its default even when this test runs under a backgrounded runner,
    # which would hand the script an ignored SIGINT that bash cannot trap.
    proc = subprocess.Popen(["bash", "infra/up.sh"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(1)
        printed = (tmp_path / "up.log").read_text()
        assert api in printed and ui in printed
        assert httpx.get(f"{api}/healthz").status_code == 200
        groups = {node["assetKey"]["path"][0]: node["groupName"] for node in _graphql(ui, ASSETS)["assetNodes"]}
        assert groups["eval_report"] == "evaluation" and groups["deployment"] == "serving" and "sft_dataset" in groups
        assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()
        while True:  # the daemon reports its heartbeats a few seconds after start
            statuses = _graphql(ui, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
            required = {s["daemonType"]: s["healthy"] for s in statuses if s["required"]}
            if {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= set(required) and all(required.values()):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(2)
    finally:
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the script
        try:
            proc.wait(60)
        finally:
            _, leftovers = psutil.wait_procs(started, timeout=5)
            for process in [psutil.Process(proc.pid), *leftovers] if proc.poll() is None else leftovers:
                process.kill()
    assert not leftovers, [p.cmdline() for p in leftovers]
    assert "stopped" in (tmp_path / "up.log").read_text()
    for url in (f"{api}/healthz", f"{ui}/server_info"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
