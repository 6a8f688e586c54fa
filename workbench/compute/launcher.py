"""Dagster runs executed inside this process under a pool, and what happens when that process dies.

Training jobs and compute allocations both run as Dagster runs of the workbench's instance
(``settings.dagster_home``), executed in-process (``execute_in_process``) in a background thread of
the process that accepted the request, each with a single op that declares ``pool=<pool>``.
Dagster's op-granularity pools make that op wait for a free slot of its pool (with run priority
from ``dagster/priority``), so work beyond a pool's size queues instead of oversubscribing:

* :func:`job_for_pool` builds (once per process) the job definition of a kind for one pool — op
  pools are fixed per definition;
* :func:`launch_in_process` starts the run in a thread, handing its op this process's own
  ``Services`` as the ``workbench`` resource, and reports a failed run to the caller;
* :func:`process_owner` / :func:`owner_alive` name the process that owns a record, so a record left
  active by a dead process (server killed) is recognised, and :func:`mark_run_interrupted` marks its
  Dagster run failed and frees the pool slots it held or waited for.

Dagster is imported inside the functions only: importing this module stays light.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import JobDefinition

    from workbench.config import Settings
    from workbench.services import Services

__all__ = ["LiveServices", "StopSignals", "job_for_pool", "launch_in_process", "mark_run_interrupted", "owner_alive",
           "process_owner"]

log = logging.getLogger("workbench.compute")

# --------------------------------------------------------------------------- in-process stop signals


class StopSignals:
    """One ``threading.Event`` per record run by this process: setting it ends that run's op at
    once (a run in another process polls its record instead)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def event(self, key: str) -> threading.Event:
        """The record's event, created on first use."""
        with self._lock:
            return self._events.setdefault(key, threading.Event())

    def set(self, key: str) -> None:
        """Signal the record's run, if this process runs it."""
        with self._lock:
            event = self._events.get(key)
        if event is not None:
            event.set()

    def forget(self, key: str) -> None:
        """Drop the record's event once its run has ended."""
        with self._lock:
            self._events.pop(key, None)


# --------------------------------------------------------------------------- process ownership

_TOKEN = uuid.uuid4().hex[:12]


def _process_started(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - psutil missing, or the process is gone
        return None


def process_owner() -> dict[str, Any]:
    """This process as the owner of a record: host, pid, a per-process token and the start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": _TOKEN, "started": _process_started(os.getpid())}


def owner_alive(owner: Mapping[str, Any] | None) -> bool:
    """Whether the process named by :func:`process_owner` may still be running.

    Another host's process counts as alive (it cannot be checked from here); the same pid with
    another start time is a different process (pid reuse).
    """
    if not owner:
        return False
    if owner.get("token") == _TOKEN and owner.get("pid") == os.getpid():
        return True
    if owner.get("host") != socket.gethostname():
        return True
    pid = int(owner.get("pid") or 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started, now = owner.get("started"), _process_started(pid)
    return not (started is not None and now is not None and abs(now - started) > 1.0)


# --------------------------------------------------------------------------- job definitions

_JOBS: dict[tuple[str, str], JobDefinition] = {}
_JOBS_LOCK = threading.Lock()


def job_for_pool(kind: str, pool: str, build: Callable[[str], JobDefinition]) -> JobDefinition:
    """The job definition of ``kind`` whose op runs in ``pool``: ``build(pool)`` on first use, then cached."""
    with _JOBS_LOCK:
        key = (kind, pool)
        if key not in _JOBS:
            _JOBS[key] = build(pool)
        return _JOBS[key]


# --------------------------------------------------------------------------- launching


class LiveServices:
    """The ``workbench`` resource of in-process runs: hands the op the launching process's own Services."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def services(self) -> Services:
        """The launching process's Services (same stores, same in-process stop events)."""
        return self._services


def launch_in_process(
    services: Services,
    definition: JobDefinition,
    *,
    run_id: str,
    run_config: dict[str, Any],
    tags: Mapping[str, str],
    thread_name: str,
    on_failure: Callable[[str], None],
    on_exit: Callable[[], None] | None = None,
) -> threading.Thread:
    """Execute ``definition`` as Dagster run ``run_id`` in a background thread of this process.

    The Dagster home is made ready before the thread starts, so a broken home fails the caller's
    request. ``on_failure(message)`` is called when the run fails or cannot execute;
    ``on_exit()`` always runs last in the thread.
    """
    from workbench.compute.dagster_home import ensure_dagster_home, open_instance

    ensure_dagster_home(services.settings)

    def run() -> None:
        try:
            with open_instance(services.settings) as instance:
                result = definition.execute_in_process(
                    run_config=run_config, instance=instance, tags=dict(tags), run_id=run_id,
                    resources={"workbench": LiveServices(services)}, raise_on_error=False,
                )  # fmt: skip
            if not result.success:
                on_failure("the Dagster run failed; see its logs in the Dagster UI")
        except Exception as exc:  # noqa: BLE001 - reported to the caller's record
            log.exception("dagster run %s (%s) failed", run_id, thread_name)
            on_failure(f"dagster: {exc}")
        finally:
            if on_exit is not None:
                on_exit()

    thread = threading.Thread(target=run, name=thread_name, daemon=True)
    thread.start()
    return thread


def mark_run_interrupted(settings: Settings, run_id: str, message: str) -> None:
    """Mark an unfinished run failed with ``message`` (its process died) and free the pool slots it held."""
    from workbench.compute.dagster_home import open_instance

    with open_instance(settings) as instance:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
