"""The sandbox child process: runs scenario code (tools, checkers, page API handlers).

Standard library only, so it forks cheaply from the forkserver. Everything crosses the pipe as
JSON bytes (never pickle), so hostile code cannot make the parent unpickle anything.

Confinement, in the order it is set up:

* its own session/process group (the parent kills the whole group);
* rlimits: address space, CPU seconds, no new processes (for non-root users), file size, no core;
* cwd, TMPDIR and HOME are the per-run directory, and the environment variables are reduced to
  PATH/LANG (the parent's may hold credentials);
* an audit hook (``sys.addaudithook``) that blocks, and records, writes outside the run directory,
  process creation, signals, raising rlimits, ctypes access to dangerous libc symbols and, unless
  the scenario allows network, sockets.

Audit hooks are a tripwire, not a security boundary against C extensions; the rlimits and the
parent's wall-clock kill are what make runaway code stop.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import random
import signal
import sys
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

# Virtual clock base: environments see time advance per step, never the wall clock.
CLOCK_BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)

_MB = 1024 * 1024
_FILE_SIZE_LIMIT = 64 * _MB


class SandboxViolation(PermissionError):
    """Raised inside the sandbox when code tries something the sandbox does not allow."""


class Context:
    """What sandboxed code receives as ``ctx``.

    Tools (``fn(ctx, **arguments)``) and page API handlers (``fn(ctx, request)``) get ``state``
    (mutable; changes persist for the run), ``rng`` (a ``random.Random`` seeded from the run seed,
    step and call), ``now`` (a virtual UTC clock that advances one minute per step), ``step``,
    ``seed`` and ``workdir``. Checkers (``fn(ctx, **args)``) also get ``answer``,
    ``initial_state``, ``tool_calls``, ``steps`` and ``observation``.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.state: dict[str, Any] = data.get("state") or {}
        self.initial_state: dict[str, Any] = data.get("initial_state") or {}
        self.answer: Any = data.get("answer")
        self.tool_calls: list[dict[str, Any]] = data.get("tool_calls") or []
        self.steps: int = data.get("steps", 0)
        self.observation: str = data.get("observation", "")
        self.step: int = data.get("step", 0)
        self.seed: int = data.get("seed", 0)
        self.call_index: int = data.get("call_index", 0)
        self.workdir: str = os.getcwd()
        self.now: datetime = CLOCK_BASE + timedelta(minutes=self.step)
        self.rng = random.Random(f"{self.seed}:{self.step}:{self.call_index}")

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access, for checkers written against a mapping."""
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


# ----------------------------------------------------------------------------- confinement

_violations: list[str] = []


def _violation(message: str) -> None:
    _violations.append(message)
    raise SandboxViolation("sandbox: " + message)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_ALLOWED_WRITE = {"/dev/null"}
_BAD_SYMBOLS = {
    "fork", "vfork", "clone", "clone3", "system", "popen", "execv", "execve", "execvp", "execvpe",
    "execl", "execle", "execlp", "fexecve", "posix_spawn", "posix_spawnp", "socket", "connect",
    "setrlimit", "prlimit", "prlimit64", "unshare", "ptrace", "kill", "syscall", "setsid", "daemon",
}
_PROCESS_EVENTS = {
    "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
    "pty.spawn", "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill",
}
_NETWORK_EVENTS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg",
}
# event -> indexes of path arguments that get written/changed
_PATH_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (1,),
    "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
    "os.mkfifo": (0,), "os.mknod": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "os.chflags": (0,), "os.lchflags": (0,), "shutil.rmtree": (0,),
}


def _outside(path: Any, root: str) -> str | None:
    """The resolved path if it lies outside ``root`` (and is not always allowed), else None."""
    if path is None or isinstance(path, int):
        return None
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    resolved = os.path.realpath(os.path.join(os.getcwd(), text))
    if resolved in _ALLOWED_WRITE or resolved == root or resolved.startswith(root + os.sep):
        return None
    return resolved


def _install_audit_hook(root: str, allow_network: bool) -> None:
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing:
                bad = _outside(path, root)
                if bad is not None:
                    _violation(f"writing outside the run directory is not allowed ({bad})")
        elif event in _PATH_EVENTS:
            for index in _PATH_EVENTS[event]:
                if index < len(args):
                    bad = _outside(args[index], root)
                    if bad is not None:
                        _violation(f"changing files outside the run directory is not allowed ({event} {bad})")
        elif event in _PROCESS_EVENTS:
            if event == "os.kill" and args and args[0] == os.getpid():
                return
            _violation(f"process creation and signals are not allowed ({event})")
        elif event in ("resource.setrlimit", "resource.prlimit"):
            _violation(f"changing resource limits is not allowed ({event})")
        elif event == "ctypes.dlsym":
            name = args[1] if len(args) > 1 else None
            if isinstance(name, str) and name in _BAD_SYMBOLS:
                _violation(f"calling libc {name} through ctypes is not allowed")
        elif event in _NETWORK_EVENTS and not allow_network:
            _violation(f"network access is not allowed for this scenario ({event})")

    sys.addaudithook(hook)


def _set_limits(memory_mb: int, cpu_s: float) -> None:
    import resource

    cpu = max(1, int(cpu_s + 0.999))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * _MB, memory_mb * _MB))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT))
    # Counts processes of the whole user and does not bind root; the audit hook covers that case.
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # A too-large file must fail the write (EFBIG), not kill the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


# ----------------------------------------------------------------------------- calls

_functions: dict[str, Any] = {}


def _resolve(ref: str) -> Any:
    fn = _functions.get(ref)
    if fn is not None:
        return fn
    target, _, qualname = ref.rpartition(":")
    if target.endswith(".py"):
        name = "_wb_user_" + str(abs(hash(target)))
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, target)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {target}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = module
    for part in qualname.split("."):
        fn = getattr(fn, part)
    _functions[ref] = fn
    return fn


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "ping":
        return {"ok": True, "result": os.getpid()}
    fn = _resolve(request["ref"])
    ctx = Context(request.get("ctx") or {})
    if op == "tool":
        result = fn(ctx, **(request.get("kwargs") or {}))
    elif op == "checker":
        result = fn(ctx, **(request.get("kwargs") or {}))
    elif op == "route":
        result = fn(ctx, request.get("request") or {})
    else:
        raise ValueError(f"unknown op {op!r}")
    # checkers judge the state; only tools and routes change it
    return {"ok": True, "result": result, "state": None if op == "checker" else ctx.state}


def _encode(reply: dict[str, Any]) -> bytes:
    reply["violations"] = list(_violations)
    try:
        return json.dumps(reply, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        return json.dumps(
            {
                "ok": False,
                "error": {"type": "TypeError", "message": f"returned a value that is not JSON: {exc}", "traceback": ""},
                "violations": list(_violations),
            }
        ).encode()


def _error(exc: BaseException) -> dict[str, Any]:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "ok": False,
        "error": {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "".join(frames[-3:])[-2000:]},
    }


def main(conn: Any, config: dict[str, Any]) -> None:
    """Entry point of the sandbox process: confine itself, then answer requests until EOF."""
    try:
        os.setsid()
    except OSError:
        pass
    workdir = config["workdir"]
    # stdout/stderr of scenario code go to a file in the run dir, not the parent's terminal
    log = os.open(os.path.join(workdir, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    # the parent's environment may hold credentials: scenario code sees a minimal one
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    os.environ.clear()
    os.environ.update(kept)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.update(TMPDIR=workdir, HOME=workdir)
    import tempfile

    tempfile.tempdir = workdir
    os.chdir(workdir)
    sys.dont_write_bytecode = True
    for path in config.get("sys_path", []):
        if path not in sys.path:
            sys.path.insert(0, path)
    _set_limits(config["memory_mb"], config["cpu_s"])
    _install_audit_hook(os.path.realpath(workdir), bool(config.get("allow_network")))
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        _violations.clear()
        try:
            reply = _handle(json.loads(raw))
        except MemoryError:
            reply = {"ok": False, "error": {"type": "MemoryError", "message": "out of memory", "traceback": ""}}
        except BaseException as exc:  # noqa: BLE001 - everything the code raises goes back as data
            reply = _error(exc)
        try:
            conn.send_bytes(_encode(reply))
        except MemoryError:
            conn.send_bytes(b'{"ok": false, "error": {"type": "MemoryError", "message": "out of memory", "traceback": ""}}')
