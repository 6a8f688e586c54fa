"""The Dagster instance under ``WORKBENCH_HOME``: its ``dagster.yaml`` and its concurrency pools.

Training jobs and compute allocations run as Dagster runs recorded in this instance,
so ``dagster dev`` / ``dagster-webserver`` pointed at the same ``DAGSTER_HOME`` shows them. The
instance keeps SQLite storage under ``settings.dagster_home`` (Postgres when scaled out: only
``dagster.yaml`` changes), has telemetry off, and enforces *pools* at op granularity: a step that
declares ``pool="cpu"`` waits for a free slot of that pool, in every executor including the
in-process one, so more jobs than a pool allows queue instead of oversubscribing the machine.

Dagster is imported inside the functions only: ``import workbench.compute`` stays light.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ValidationFailed

try:
    import fcntl
except ImportError:  # Windows: claims stay as Dagster makes them
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from workbench.config import Settings

__all__ = [
    "DEFAULT_POOLS",
    "DEFAULT_POOL_LIMIT",
    "POOL_PATTERN",
    "check_pool_name",
    "dagster_yaml",
    "ensure_dagster_home",
    "open_instance",
    "pool_limits",
    "set_pool_limit",
]

# One training slot on the 2-core default machine: two concurrent CPU trainings were measured
# several times slower each than one after the other (torch threads fight).
DEFAULT_POOLS: dict[str, int] = {"cpu": 1}
# Pools nobody configured yet (e.g. ``gpu-a100`` on first use) start at this many slots.
DEFAULT_POOL_LIMIT = 1
POOL_PATTERN = re.compile(r"^(cpu|gpu-[a-z0-9][a-z0-9_.-]{0,40}|[a-z][a-z0-9_.-]{0,40})$")

_LOCK = threading.Lock()
_READY: set[Path] = set()


def check_pool_name(pool: str, field: str = "compute_requirements.pool") -> str:
    """A valid pool name (``cpu``, ``gpu-<type>`` or another lowercase name) or ValidationFailed."""
    if not isinstance(pool, str) or not POOL_PATTERN.match(pool):
        raise ValidationFailed(field, f"{pool!r} is not a pool name: use 'cpu', 'gpu-<type>' or a lowercase name")
    return pool


def dagster_yaml(home: Path, *, max_concurrent_runs: int = 4) -> str:
    """The instance configuration written to ``home/dagster.yaml``."""
    storage = (home / "storage").as_posix()
    return (
        "# Written by workbench.compute.ensure_dagster_home; edit freely (it is only created when missing).\n"
        "telemetry:\n  enabled: false\n"
        f"storage:\n  sqlite:\n    base_dir: {storage}\n"
        f"local_artifact_storage:\n  module: dagster._core.storage.root\n  class: LocalArtifactStorage\n"
        f"  config:\n    base_dir: {home.as_posix()}\n"
        # runs launched from the UI, sensors and automation wait in the daemon's queue
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "concurrency:\n"
        f"  runs:\n    max_concurrent_runs: {max_concurrent_runs}\n"  # runs launched through the queue (UI, daemon)
        f"  pools:\n    granularity: op\n    default_limit: {DEFAULT_POOL_LIMIT}\n"
        "run_monitoring:\n  enabled: true\n"  # the daemon enforces dagster/max_runtime on queued runs
    )


def ensure_dagster_home(settings: Settings, pools: Mapping[str, int] | None = None) -> Path:
    """Create ``settings.dagster_home`` with its ``dagster.yaml`` when missing, and the pools.

    Pools in ``pools`` (default :data:`DEFAULT_POOLS`) get their limit only if the instance has
    none yet, so limits changed later (``set_pool_limit``, the Dagster UI) survive restarts.
    Idempotent and cheap after the first call in a process. Returns the Dagster home.
    """
    home = settings.dagster_home
    with _LOCK:
        if home in _READY and pools is None:
            return home
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.is_file():
            tmp = home / ".dagster.yaml.tmp"
            tmp.write_text(dagster_yaml(home))
            tmp.replace(config)
        with open_instance(settings) as instance:
            storage = instance.event_log_storage
            known = {p.name: p for p in storage.get_pool_limits()}
            for name, limit in (pools if pools is not None else DEFAULT_POOLS).items():
                check_pool_name(name, "pools")
                if name not in known or known[name].from_default:
                    storage.set_concurrency_slots(name, int(limit))
        _READY.add(home)
    return home


@contextmanager
def open_instance(settings: Settings) -> Iterator[DagsterInstance]:
    """The Dagster instance of this home (one per caller: instances are not shared across threads)."""
    from dagster import DagsterInstance

    home = settings.dagster_home
    if not (home / "dagster.yaml").is_file():
        ensure_dagster_home(settings)
    instance = DagsterInstance.from_config(str(home))
    if not instance.get_python_log_dagster_handler_config():
        # Dagster 1.13 calls logging.config.dictConfig at the start of every run whenever the instance
        # has a dagster.yaml, even with no `python_logs` handlers configured. dictConfig takes the
        # logging module's lock and then every handler's lock, while a thread that is logging holds
        # its handler's lock and wants the module lock: two runs (or a run and a request log) in one
        # process deadlocked here. With no handlers configured the call only clears other
        # handlers, so skip it.
        instance.get_yaml_python_handlers = lambda: []  # type: ignore[method-assign]
    _serialize_slot_claims(instance, home)
    try:
        yield instance
    finally:
        instance.dispose()


def _serialize_slot_claims(instance: DagsterInstance, home: Path) -> None:
    """Make claiming and freeing pool slots one at a time across threads and processes of this machine.

    On SQLite, dagster 1.13's claim reads a free slot and then updates it by id without a row lock
    (``SELECT ... FOR UPDATE`` is a no-op there), and assigns pending steps the same way; two runs
    claiming at the same instant both got the pool's single slot. Postgres storage locks the rows
    itself; here a file lock next to dagster.yaml serializes the few milliseconds of each claim.
    """
    storage = instance.event_log_storage
    lock_path = home / ".pool-slots.lock"

    def locked(method: Any) -> Any:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with open(lock_path, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                return method(*args, **kwargs)

        return call

    if fcntl is not None:
        for name in ("claim_concurrency_slot", "free_concurrency_slot_for_step", "free_concurrency_slots_for_run"):
            setattr(storage, name, locked(getattr(storage, name)))


def set_pool_limit(settings: Settings, pool: str, limit: int) -> None:
    """Set how many steps of ``pool`` may run at once (0 blocks the pool)."""
    check_pool_name(pool, "pool")
    if not isinstance(limit, int) or limit < 0:
        raise ValidationFailed("limit", "a pool limit is a whole number ≥ 0")
    ensure_dagster_home(settings)
    with open_instance(settings) as instance:
        instance.event_log_storage.set_concurrency_slots(pool, limit)


def pool_limits(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every pool of the instance: its limit and the steps holding or waiting for a slot."""
    ensure_dagster_home(settings)
    with open_instance(settings) as instance:
        storage = instance.event_log_storage
        out: dict[str, dict[str, Any]] = {}
        for pool in storage.get_pool_limits():
            info = storage.get_concurrency_info(pool.name)
            out[pool.name] = {
                "limit": info.slot_count,
                "running": info.active_slot_count,
                "waiting": info.pending_step_count,
                "running_run_ids": sorted(info.active_run_ids),
                "waiting_run_ids": sorted(info.pending_run_ids),
            }
        return out
