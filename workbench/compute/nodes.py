"""Node monitoring: CPU, memory and GPU utilisation and preemption notices, recorded in the control plane.

* :func:`read_node` measures this machine now: CPU (psutil), memory, load, and per-GPU utilisation
  and memory through NVML (``nvidia-ml-py``'s ``pynvml``) when it is importable and finds a driver
  — otherwise the GPU fields are null — plus any preemption notice.
* :func:`sample_node` measures and records one sample (``compute_node_samples``);
  :func:`latest_samples` returns each node's newest sample.
* :class:`NodeSampler` runs in the API process: one sample every ``node_sample_interval_s``, old
  samples pruned, and a watch on SIGTERM (how Kubernetes and spot/preemptible VMs announce that a
  node goes away) that records a preempted sample at once.

Preemption notices: a SIGTERM received by the sampling process, or the file
``settings.resolved_preemption_notice_file`` existing (a node agent writes it, e.g. from a cloud
provider's spot-interruption notice); its first 500 characters are kept as the detail.
Node samples describe shared machines, not tenant data, so they carry no tenant.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select

from workbench.store.models import NodeSampleRecord

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.services import Services

__all__ = ["NodeSample", "NodeSampler", "latest_samples", "prune_samples", "read_node", "sample_node"]

log = logging.getLogger("workbench.compute")
_MB = 1024 * 1024


class NodeSample(BaseModel):
    """One reading of a machine (utilisations in percent; null where it cannot be measured)."""

    model_config = ConfigDict(from_attributes=True)

    node: str = Field(description="Host name.")
    ts: datetime
    cpu_percent: float | None = None
    cpu_count: int | None = None
    load_1m: float | None = None
    memory_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    gpu_count: int | None = Field(None, description="Null when NVML is unavailable (no pynvml or no driver).")
    gpu_utilization: float | None = Field(None, description="Mean utilisation over the GPUs.")
    gpu_memory_percent: float | None = Field(None, description="GPU memory used over all GPUs' memory.")
    gpus: list[dict[str, Any]] | None = Field(None, description="Per GPU: index, name, utilization, memory.")
    preempted: bool = False
    preemption: dict[str, Any] | None = Field(None, description="The notice: source (signal | notice_file), detail, at.")


# --------------------------------------------------------------------------- measuring

_CPU_PRIMED = False


def _cpu_percent(psutil: Any) -> float:
    """CPU use since the previous reading in this process (a short first measurement)."""
    global _CPU_PRIMED
    if not _CPU_PRIMED:
        _CPU_PRIMED = True
        return float(psutil.cpu_percent(interval=0.1))
    return float(psutil.cpu_percent(interval=None))


def _host() -> dict[str, Any]:
    out: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        out["load_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return out
    memory = psutil.virtual_memory()
    out.update(cpu_percent=_cpu_percent(psutil), memory_percent=float(memory.percent),
               memory_used_mb=(memory.total - memory.available) / _MB, memory_total_mb=memory.total / _MB)  # fmt: skip
    return out


def _gpus() -> list[dict[str, Any]] | None:
    """Per-GPU utilisation and memory through NVML, or None without pynvml or a driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError: no driver or library on this machine
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append({"index": index, "name": name.decode() if isinstance(name, bytes) else str(name),
                         "utilization": float(rates.gpu), "memory_used_mb": memory.used / _MB,
                         "memory_total_mb": memory.total / _MB})  # fmt: skip
        return gpus
    except Exception:  # noqa: BLE001 - a device that cannot be read leaves the GPU fields null
        log.warning("could not read GPUs through NVML", exc_info=True)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _notice_file(settings: Settings) -> dict[str, Any] | None:
    path = settings.resolved_preemption_notice_file
    try:
        text = path.read_text(errors="replace")[:500].strip()
        at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        text, at = f"unreadable notice file: {exc}", datetime.now(UTC)
    return {"source": "notice_file", "path": str(path), "detail": text, "at": at.isoformat()}


def read_node(settings: Settings, *, preemption: dict[str, Any] | None = None) -> NodeSample:
    """Measure this machine now; ``preemption`` is a notice already received (e.g. a signal)."""
    gpus = _gpus()
    gpu_fields: dict[str, Any] = {}
    if gpus is not None:
        total = sum(g["memory_total_mb"] for g in gpus)
        gpu_fields = {"gpus": gpus, "gpu_count": len(gpus),
                      "gpu_utilization": sum(g["utilization"] for g in gpus) / len(gpus) if gpus else None,
                      "gpu_memory_percent": 100 * sum(g["memory_used_mb"] for g in gpus) / total if total else None}  # fmt: skip
    notice = preemption or _notice_file(settings)
    return NodeSample(node=socket.gethostname(), ts=datetime.now(UTC), **_host(), **gpu_fields,
                      preempted=notice is not None, preemption=notice)  # fmt: skip


def sample_node(services: Services, *, preemption: dict[str, Any] | None = None) -> NodeSample:
    """Measure this machine now and record the sample in the control plane."""
    sample = read_node(services.settings, preemption=preemption)
    with services.control.session() as session:
        session.add(NodeSampleRecord(**sample.model_dump()))
    return sample


def latest_samples(services: Services) -> list[NodeSample]:
    """The newest sample of every node that was sampled, by node name."""
    newest = select(func.max(NodeSampleRecord.id)).group_by(NodeSampleRecord.node)
    with services.control.session() as session:
        records = session.scalars(select(NodeSampleRecord).where(NodeSampleRecord.id.in_(newest))
                                  .order_by(NodeSampleRecord.node))  # fmt: skip
        return [NodeSample.model_validate(r) for r in records]


def prune_samples(services: Services, older_than: timedelta) -> int:
    """Delete samples older than ``older_than``; returns how many."""
    with services.control.session() as session:
        cutoff = datetime.now(UTC) - older_than
        return session.execute(delete(NodeSampleRecord).where(NodeSampleRecord.ts < cutoff)).rowcount


# --------------------------------------------------------------------------- the sampler


class NodeSampler:
    """Samples this node every ``interval_s`` in a background thread, and records SIGTERM as a preemption.

    :meth:`start` takes the first sample at once and, from the main thread, chains a SIGTERM
    handler in front of the one installed (uvicorn's shutdown): the signal is recorded as a
    preempted sample right away, then handled as before. :meth:`stop` takes a last sample.
    """

    def __init__(self, services: Services, interval_s: float) -> None:
        self.services = services
        self.interval_s = interval_s
        self.notice: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: dict[int, Any] = {}

    def start(self) -> None:
        """Start sampling (and watching SIGTERM when called from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM,):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self._thread = threading.Thread(target=self._run, name="node-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Take a last sample, stop the thread and put back the signal handlers it chained."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.notice = {"source": "signal", "detail": signal.Signals(signum).name, "at": datetime.now(UTC).isoformat()}
        self._wake.set()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _run(self) -> None:
        retention = timedelta(days=self.services.settings.node_sample_retention_days)
        while True:
            try:
                sample_node(self.services, preemption=self.notice)
                prune_samples(self.services, retention)
            except Exception:  # noqa: BLE001 - monitoring must not take the server down
                log.warning("node sample failed", exc_info=True)
            if self._stopping.is_set():
                return
            self._wake.wait(self.interval_s)
            self._wake.clear()
