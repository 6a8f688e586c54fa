"""Hostile checkers and tools are contained: the run ends with a clear reason, the parent is fine."""

from __future__ import annotations

import multiprocessing
import os
import socket
import textwrap
from pathlib import Path

import pytest

import workbench.envs as envs

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

HOSTILE = textwrap.dedent(
    """
    import os, socket, subprocess, time

    def loop(ctx):
        while True:
            pass

    def sleep(ctx):
        time.sleep(60)

    def allocate(ctx):
        hoard = []
        while True:
            hoard.append(bytearray(10 ** 7))

    def fork_bomb(ctx):
        while True:
            os.fork()

    def quiet_fork_bomb(ctx):
        for _ in range(200):
            try:
                os.fork()
            except Exception:
                pass
        return True

    def shell(ctx):
        subprocess.run(["sh", "-c", "echo escaped"])
        return True

    def write_outside(ctx, path):
        with open(path, "w") as f:
            f.write("escaped")
        return True

    def delete_outside(ctx, path):
        os.remove(path)
        return True

    def write_inside(ctx):
        with open("scratch.txt", "w") as f:
            f.write("fine")
        return open("scratch.txt").read() == "fine" and os.getcwd() == ctx.workdir

    def raises(ctx):
        raise RuntimeError("checker exploded")

    def connect(ctx, port):
        socket.create_connection(("127.0.0.1", port), timeout=1)
        return True

    def raise_limit(ctx):
        import resource
        resource.setrlimit(resource.RLIMIT_CPU, (10_000, 10_000))
        return True

    def ctypes_fork(ctx):
        import ctypes
        ctypes.CDLL(None).fork()
        return True

    def huge_reply(ctx):
        return {"success": True, "reason": "x" * (20 * 1024 * 1024)}

    def hang_tool(ctx, **kwargs):
        time.sleep(60)

    def fine(ctx):
        return True
    """
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "hostile.py"
    path.write_text(HOSTILE)
    return path


def judge(hostile: Path, function: str, *, limits=None, **args) -> dict:
    """Run a one-step scenario whose checker is ``function``; return the final info."""
    scenario = envs.parse_scenario(
        {
            "name": f"hostile-{function}",
            "type": "text",
            "instructions": "Answer anything.",
            "checker": {"python": f"{hostile}:{function}", "args": args},
            "limits": {"step_timeout_s": 3, "cpu_s": 1, "memory_mb": 256, **(limits or {})},
        }
    )
    env = envs.make(scenario)
    env.reset()
    _, reward, terminated, _, info = env.step({"answer": "x"})
    env.close()
    assert terminated
    assert reward == (1.0 if info["status"] == "success" else 0.0)
    return info


def assert_parent_healthy(hello: envs.Scenario) -> None:
    assert multiprocessing.active_children() == []  # every worker was reaped
    assert envs.run_episode(hello, "oracle")["success"]  # and runs still work


@pytest.fixture(scope="module")
def hello() -> envs.Scenario:
    return envs.load_scenario(SCENARIOS / "hello.yaml")


def test_infinite_loop_hits_the_cpu_limit(hostile, hello):
    info = judge(hostile, "loop", limits={"step_timeout_s": 10})  # wall clock well beyond the CPU limit
    assert info["status"] == "error"
    assert info["reason"].endswith("exceeded the CPU limit of 1 s and was stopped")
    assert_parent_healthy(hello)


def test_blocking_checker_hits_the_wall_clock(hostile, hello):
    info = judge(hostile, "sleep", limits={"step_timeout_s": 1})
    assert info["status"] == "error"
    assert "exceeded the wall-clock limit of 1 s" in info["reason"]
    assert_parent_healthy(hello)


def test_unbounded_allocation_hits_the_memory_limit(hostile, hello):
    info = judge(hostile, "allocate")
    assert info["status"] == "error"
    assert "exceeded the memory limit of 256 MB" in info["reason"]
    assert_parent_healthy(hello)


@pytest.mark.parametrize("function", ["fork_bomb", "quiet_fork_bomb", "ctypes_fork"])
def test_fork_bombs_are_stopped(hostile, hello, function):
    before = set(os.listdir("/proc"))
    info = judge(hostile, function)
    assert info["status"] == "error"
    assert "was stopped by the sandbox" in info["reason"] and "fork" in info["reason"]
    assert_parent_healthy(hello)
    assert len(set(os.listdir("/proc")) - before) < 5  # no swarm of new processes


def test_subprocesses_are_stopped(hostile, hello):
    info = judge(hostile, "shell")
    assert info["status"] == "error" and "subprocess.Popen" in info["reason"]


def test_writes_outside_the_run_dir_are_stopped(hostile, hello, tmp_path):
    target = tmp_path / "escaped.txt"
    info = judge(hostile, "write_outside", path=str(target))
    assert info["status"] == "error"
    assert f"writing outside the run directory is not allowed ({target})" in info["reason"]
    assert not target.exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    info = judge(hostile, "delete_outside", path=str(victim))
    assert info["status"] == "error" and "os.remove" in info["reason"]
    assert victim.read_text() == "keep me"
    assert_parent_healthy(hello)


def test_writes_inside_the_run_dir_are_allowed(hostile):
    assert judge(hostile, "write_inside")["status"] == "success"


def test_raising_checker_is_an_error_with_its_message(hostile, hello):
    info = judge(hostile, "raises")
    assert info["status"] == "error"
    assert info["reason"].endswith("raised RuntimeError: checker exploded")
    assert_parent_healthy(hello)


def test_network_is_blocked_unless_allowed(hostile):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        info = judge(hostile, "connect", port=port)
        assert info["status"] == "error" and "network access is not allowed" in info["reason"]
        spec = {
            "name": "net-ok", "type": "text", "instructions": "x", "allow_network": True,
            "checker": {"python": f"{hostile}:connect", "args": {"port": port}},
        }
        env = envs.make(spec)
        env.reset()
        assert env.step({"answer": "x"})[4]["status"] == "success"
        env.close()
    finally:
        server.close()


def test_limits_cannot_be_raised_from_inside(hostile):
    info = judge(hostile, "raise_limit")
    assert info["status"] == "error" and "changing resource limits is not allowed" in info["reason"]


def test_oversized_replies_are_refused(hostile):
    info = judge(hostile, "huge_reply", limits={"memory_mb": 512})
    assert info["status"] == "error" and "returned more than 16 MB" in info["reason"]


def test_a_hanging_tool_times_out_the_run(hostile, hello):
    scenario = envs.parse_scenario(
        {
            "name": "hang", "type": "text", "instructions": "x",
            "tools": [{"name": "hang", "handler": f"{hostile}:hang_tool"}],
            "checker": {"equals": "x"},
            "limits": {"step_timeout_s": 0.5},
        }
    )
    env = envs.make(scenario)
    env.reset()
    obs, _, terminated, _, info = env.step({"tool": "hang", "arguments": {}})
    assert terminated and info["status"] == "timeout"
    assert "tool 'hang' exceeded the wall-clock limit of 0.5 s" in info["reason"]
    assert "error: tool 'hang' exceeded" in env.trace()["steps"][1]["tool_calls"][0]["content"]
    env.close()
    assert_parent_healthy(hello)


def test_sandbox_replaces_a_misbehaving_worker(hostile):
    with envs.Sandbox(memory_mb=256, cpu_s=2) as sandbox:
        first = sandbox.ping()
        with pytest.raises(envs.SandboxError) as info:
            sandbox.call("checker", f"{hostile}:raises")
        assert info.value.kind == "exception" and sandbox.pid == first  # a plain exception keeps the worker
        with pytest.raises(envs.SandboxError) as info:
            sandbox.call("checker", f"{hostile}:sleep", timeout=0.3)
        assert info.value.kind == "timeout" and not sandbox.alive
        second = sandbox.ping()  # a fresh worker on the next call
        assert second != first and sandbox.restarts == 1
        assert sandbox.call("checker", f"{hostile}:fine").result is True
        workdir = sandbox.workdir
        assert os.path.isdir(workdir)
    assert not os.path.exists(workdir)  # the run dir goes with the sandbox


def test_worker_does_not_rerun_the_callers_main_module(tmp_path):
    # a script without a __main__ guard must not be executed again inside the sandbox
    script = tmp_path / "script.py"
    marker = tmp_path / "ran-twice"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, workbench.envs as envs
            if os.path.exists({str(marker)!r} + ".first"):
                open({str(marker)!r}, "w").close()
            open({str(marker)!r} + ".first", "w").close()
            print(envs.run_episode(envs.load_scenario({str(SCENARIOS / 'hello.yaml')!r}), "oracle")["status"])
            """
        )
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "success", result.stderr
    assert not marker.exists()


def test_sandbox_does_not_see_the_parents_environment(hostile):
    import subprocess
    import sys

    probe = hostile.parent / "env_probe.py"
    probe.write_text(
        "import os\n"
        "def probe(ctx):\n"
        "    return {'success': 'WORKBENCH_SECRET_TOKEN' not in os.environ, 'reason': ','.join(sorted(os.environ))}\n"
    )
    code = (
        "import workbench.envs as envs\n"
        f"spec = {{'name': 'probe', 'type': 'text', 'instructions': 'x', 'checker': {{'python': '{probe}:probe'}}}}\n"
        "trace = envs.run_episode({**spec, 'oracle': {'actions': [{'answer': 'x'}]}}, 'oracle')\n"
        "print(trace['status'], trace['reason'])\n"
    )
    env = {**os.environ, "WORKBENCH_SECRET_TOKEN": "s3cret"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.startswith("success"), result.stdout + result.stderr
