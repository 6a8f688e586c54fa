"""A session survives a server restart: its history is rebuilt from the control plane and the
conversation goes on where it stopped."""

from __future__ import annotations

import json

import pytest
from conftest import LiveServer

pytestmark = pytest.mark.integration


def test_session_survives_a_restart(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = LiveServer(home).start()
    try:
        tenant = server.tenant("restart")
        with server.client(tenant["api_key"]) as client:
            agent = client.post("/agents", json={
                "name": "memo", "engine": {"kind": "scripted", "cycle": True,
                                           "replies": ['{"answer": "noted"}', '{"answer": "you said: blue"}']},
            }).json()
            session_id = client.post(f"/agents/{agent['id']}/sessions").json()["session_id"]
            first = client.post(f"/agents/{agent['id']}/sessions/{session_id}/step", json={"message": "My colour is blue."})
            assert first.status_code == 200 and first.json()["reply"] == "noted"
        server.stop()

        server = LiveServer(home).start()
        with server.client(tenant["api_key"]) as client:
            history = client.get(f"/agents/{agent['id']}/sessions/{session_id}/history").json()
            assert [(t["turn"], t["message"], t["reply"]) for t in history["turns"]] == [
                (0, "My colour is blue.", "noted")
            ]
            # The new process's engine starts its script over; the conversation is the stored one.
            second = client.post(f"/agents/{agent['id']}/sessions/{session_id}/step", json={"message": "What did I say?"})
            assert second.status_code == 200
            assert second.json()["turn"] == 1
            history = client.get(f"/agents/{agent['id']}/sessions/{session_id}/history").json()
            assert [t["message"] for t in history["turns"]] == ["My colour is blue.", "What did I say?"]
            contents = [m["content"] for m in history["messages"]]
            assert contents[1:4] == ["My colour is blue.", json.dumps({"answer": "noted"}), "What did I say?"]
    finally:
        server.stop()
