"""Parent side of the sandbox: one persistent worker process per run, reused across steps.

The worker is forked from multiprocessing's forkserver (a clean process started once, with the
worker module preloaded), so starting one costs a few milliseconds and never copies the
parent's threads or browser connections. A worker that misbehaves (times out, runs out of CPU or
memory, trips the audit hook, dies) is killed with its whole process group and replaced by a
fresh one on the next call; the run that owns it decides what the failure means.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import context as mp_context
from multiprocessing import popen_forkserver
from typing import Any

_MAX_REPLY_BYTES = 16 * 1024 * 1024
_context_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    """The forkserver context, set up once, lazily (no forkserver is started at import)."""
    global _context
    with _context_lock:
        if _context is None:
            from workbench.envs._registry import BUILTIN_MODULES

            ctx = multiprocessing.get_context("forkserver")
            # preloaded once in the server, so workers start with them imported
            ctx.set_forkserver_preload(["workbench.envs._worker", *BUILTIN_MODULES])
            _context = ctx
        return _context


class _NoMainPopen(popen_forkserver.Popen):
    """Forkserver start that does not re-run the parent's ``__main__`` in the child.

    multiprocessing normally re-imports the parent's main module in the child (so scripts need
    an ``if __name__ == "__main__"`` guard). A sandbox worker needs nothing from it, and running
    a caller's script inside the sandbox would be wrong, so the preparation data leaves it out.
    The rest is multiprocessing's own forkserver launch.
    """

    def _launch(self, process_obj: Any) -> None:
        from multiprocessing import forkserver, spawn, util

        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:
            mp_context.reduction.dump(prep_data, buf)
            mp_context.reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _WorkerProcess(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _NoMainPopen(process_obj)


def _new_process(target: Any, args: tuple, name: str) -> Any:
    _mp_context()
    return _WorkerProcess(target=target, args=args, name=name, daemon=True)


class SandboxError(Exception):
    """Sandboxed code failed. ``kind`` says how; ``reason`` is one line a person can act on.

    Kinds: ``exception`` (the code raised; the worker is fine), ``violation`` (the audit hook
    blocked something), ``timeout`` (wall clock), ``cpu``, ``memory``, ``crash`` (the worker died),
    ``protocol`` (an unusable reply).
    """

    def __init__(self, kind: str, reason: str, *, exc_type: str | None = None, traceback: str = "") -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.exc_type = exc_type
        self.traceback = traceback


@dataclass
class SandboxReply:
    """What one call returned: the value and the state after the call."""

    result: Any
    state: dict[str, Any] | None
    duration_ms: float = 0.0
    violations: list[str] = field(default_factory=list)


class Sandbox:
    """A confined worker process with a private temp dir.

    ``call(op, ref, ...)`` runs ``ref`` (``module:function`` or ``/abs/file.py:function``) in the
    worker and returns a :class:`SandboxReply`, or raises :class:`SandboxError`. Not thread-safe:
    one run uses it from one thread at a time.
    """

    def __init__(
        self,
        *,
        memory_mb: int = 512,
        cpu_s: float = 10.0,
        allow_network: bool = False,
        sys_path: list[str] | None = None,
        label: str = "sandbox",
    ) -> None:
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.allow_network = allow_network
        self.sys_path = list(sys_path or [])
        self.label = label
        self.workdir = tempfile.mkdtemp(prefix="wb-run-")
        self.calls = 0
        self.restarts = 0
        self._process: Any = None
        self._conn: Any = None
        self._closed = False

    # -- lifecycle

    @property
    def alive(self) -> bool:
        """Whether a worker process is running now."""
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """Process id of the current worker, if any."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the worker now (calls start it lazily otherwise)."""
        if self._closed:
            raise RuntimeError("sandbox is closed")
        if self.alive:
            return
        ctx = _mp_context()
        parent, child = ctx.Pipe(duplex=True)
        config = {
            "workdir": self.workdir,
            "memory_mb": self.memory_mb,
            "cpu_s": self.cpu_s,
            "allow_network": self.allow_network,
            "sys_path": self.sys_path,
        }
        from workbench.envs import _worker

        process = _new_process(_worker.main, (child, config), f"wb-{self.label}")
        process.start()
        child.close()
        self._process, self._conn = process, parent
        if self.calls or self.restarts:
            self.restarts += 1

    def kill(self) -> int | None:
        """Kill the worker and everything it started; returns its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return None
        if process.is_alive():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                process.kill()
            except (ProcessLookupError, AttributeError):
                pass
        process.join(2.0)
        if conn is not None:
            conn.close()
        return process.exitcode

    def close(self) -> None:
        """Stop the worker and remove the run directory."""
        if self._process is not None:
            # a polite EOF first: the worker returns and exits by itself
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None
            self._process.join(0.2)
            self.kill()
        self._closed = True
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls

    def call(
        self,
        op: str,
        ref: str,
        *,
        ctx: dict[str, Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        timeout: float = 10.0,
        what: str | None = None,
    ) -> SandboxReply:
        """Run ``ref`` as a tool (``op="tool"``), checker or page route handler in the worker."""
        what = what or f"{op} {ref}"
        message = {"op": op, "ref": ref, "ctx": ctx or {}, "kwargs": kwargs or {}, "request": request}
        try:
            payload = json.dumps(message, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise SandboxError("protocol", f"{what}: arguments are not JSON ({exc})") from None
        if not self.alive:
            if self._process is not None:
                self.kill()
            self.start()
        self.calls += 1
        started = time.perf_counter()
        try:
            self._conn.send_bytes(payload)
            ready = self._conn.poll(timeout)
        except (BrokenPipeError, OSError, EOFError):
            ready = True  # the recv below sees the EOF and the exit code explains it
        if not ready:
            self.kill()
            raise SandboxError("timeout", f"{what} exceeded the wall-clock limit of {timeout:g} s and was stopped")
        try:
            raw = self._conn.recv_bytes(_MAX_REPLY_BYTES)
        except (EOFError, OSError) as exc:
            too_large = isinstance(exc, OSError) and "bad message length" in str(exc)
            code = self.kill()
            if too_large:
                raise SandboxError("protocol", f"{what} returned more than {_MAX_REPLY_BYTES // 2**20} MB") from None
            raise self._death(what, code) from None
        duration_ms = (time.perf_counter() - started) * 1000
        try:
            reply = json.loads(raw)
        except ValueError:
            self.kill()
            raise SandboxError("protocol", f"{what} sent an unreadable reply") from None
        violations = [str(v) for v in reply.get("violations") or []]
        if violations:
            # swallowed or not, a blocked operation means the code misbehaved: replace the worker
            self.kill()
            extra = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            raise SandboxError("violation", f"{what} was stopped by the sandbox: {violations[0]}{extra}")
        if not reply.get("ok"):
            error = reply.get("error") or {}
            exc_type = str(error.get("type", "Exception"))
            message_text = str(error.get("message", ""))
            if exc_type == "MemoryError":
                self.kill()
                raise SandboxError(
                    "memory", f"{what} exceeded the memory limit of {self.memory_mb} MB and was stopped", exc_type=exc_type
                )
            if exc_type == "RecursionError":
                self.kill()
            raise SandboxError(
                "exception",
                f"{what} raised {exc_type}: {message_text}".rstrip(": "),
                exc_type=exc_type,
                traceback=str(error.get("traceback", "")),
            )
        state = reply.get("state")
        return SandboxReply(reply.get("result"), state if isinstance(state, dict) else None, duration_ms)

    def ping(self, timeout: float = 10.0) -> int:
        """Start the worker if needed and wait until it answers; returns its pid."""
        return int(self.call("ping", "-:-", timeout=timeout).result)

    def _death(self, what: str, code: int | None) -> SandboxError:
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return SandboxError("cpu", f"{what} exceeded the CPU limit of {self.cpu_s:g} s and was stopped")
            if sig == signal.SIGKILL:
                # not our kill (that path raises "timeout"): the hard CPU limit or the kernel's OOM killer
                return SandboxError(
                    "crash", f"{what} was killed (SIGKILL): CPU limit of {self.cpu_s:g} s or the system's memory killer"
                )
            if sig == signal.SIGSEGV:
                return SandboxError(
                    "crash", f"{what} crashed (SIGSEGV), likely out of memory (limit {self.memory_mb} MB)"
                )
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return SandboxError("crash", f"{what} died from signal {name}")
        return SandboxError("crash", f"{what} ended the sandbox process (exit code {code})")


def default_sys_path() -> list[str]:
    """Import paths the worker needs beyond the forkserver's: the parent's, in order."""
    return [p for p in sys.path if p]
