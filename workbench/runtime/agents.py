"""Agents: a versioned spec (model, system prompt, plugins, generation settings) per tenant.

An agent is immutable once created; creating one with a name that exists makes the next version
(``name@v2``), so sessions and trajectories always name exactly what produced them. The model is
a registry reference (a model id or name, by default the base model) with an optional checkpoint
(default: the model's production checkpoint, else its latest, resolved when a session steps)
and an optional LoRA adapter directory. ``engine`` overrides how the model is served: a complete
engine config (``{"kind": "scripted", "replies": [...]}``, ``{"kind": "openai", "base_url": ...}``)
is used as given; ``{"kind": "transformers"}`` or ``{"kind": "vllm"}`` without a model path or URL
only forces that kind of managed serving (see :mod:`workbench.runtime.serving`; a forced ``vllm``
fails when vLLM is not installed instead of falling back).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from workbench.agents._base_model import BASE_MODEL_NAME
from workbench.agents._types import SamplingParams, ToolExample
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.runtime.plugins import PluginPin
from workbench.security.tenants import new_id
from workbench.store.models import AgentRecord

if TYPE_CHECKING:
    from workbench.services import Services

__all__ = [
    "AgentInfo",
    "AgentSpec",
    "GenerationSettings",
    "ModelRef",
    "create_agent",
    "find_agent",
    "get_agent",
    "is_managed_engine",
    "list_agents",
    "parse_agent_spec",
]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
_SECRET_KEYS = ("api_key",)


class ModelRef(BaseModel):
    """Which weights an agent runs: a registry model, optionally a checkpoint and a LoRA adapter."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(BASE_MODEL_NAME, min_length=1, max_length=200, description="Registry model id or name.")
    checkpoint: str | None = Field(
        None, max_length=200, description="Checkpoint id; default the production checkpoint, else the latest."
    )
    adapter: str | None = Field(
        None, max_length=1000, description="Directory of a PEFT LoRA adapter applied on top of the checkpoint."
    )


class GenerationSettings(BaseModel):
    """How the agent decodes and how long one session step may run."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1, le=8192, description="Per assistant turn.")
    max_steps: int = Field(4, ge=1, le=32, description="Assistant turns per session step (tool calls + answer).")
    timeout_s: float = Field(60.0, gt=0, le=900, description="Wall-clock limit of one session step.")
    seed: int | None = Field(None, description="Makes sampling reproducible (temperature > 0).")

    def sampling(self) -> SamplingParams:
        """The engine's sampling parameters."""
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed
        )


def is_managed_engine(engine: Mapping[str, Any] | None) -> bool:
    """True when ``engine`` only picks the kind of managed serving (no model path, no server URL)."""
    if engine is None:
        return True
    kind = engine.get("kind")
    return (kind == "transformers" and "model_path" not in engine) or (kind == "vllm" and "base_url" not in engine)


class AgentSpec(BaseModel):
    """What ``POST /agents`` takes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, description="Same name again makes the next version.")
    description: str | None = Field(None, max_length=2000)
    model: ModelRef = Field(default_factory=ModelRef)
    system_prompt: str = Field("You are a helpful assistant.", max_length=20_000)
    plugins: list[PluginPin] = Field(
        default_factory=list, max_length=32, description="MCP plugins, each pinned to a version with granted scopes."
    )
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    tool_examples: dict[str, list[ToolExample]] = Field(
        default_factory=dict,
        description="Worked examples per tool name, shown to the model as example turns (small models need them).",
    )
    engine: dict[str, Any] | None = Field(
        None,
        description="Explicit engine config (kind scripted/openai/vllm/transformers); default: managed serving.",
    )

    @field_validator("plugins")
    @classmethod
    def _unique_plugins(cls, pins: list[PluginPin]) -> list[PluginPin]:
        names = [p.name for p in pins]
        if len(names) != len(set(names)):
            raise ValueError("each plugin may be pinned once")
        return pins

    @model_validator(mode="after")
    def _engine_is_valid(self) -> AgentSpec:
        if self.engine is None:
            return self
        from workbench.agents._engine import parse_engine_config

        config = dict(self.engine)
        if is_managed_engine(config):
            # Only the kind (and options) are given; the runtime fills in the weights or the server.
            if config.get("kind") == "transformers":
                config["model_path"] = "."
            else:
                config.setdefault("model", "managed")
            if set(config) - {"kind", "model_path", "model"}:
                extra = ", ".join(sorted(set(config) - {"kind", "model_path", "model"}))
                raise ValueError(f"engine: a managed {config['kind']} engine takes only 'kind' (got {extra})")
        try:
            parse_engine_config(config)
        except ValidationFailed as exc:
            raise ValueError(f"engine.{exc.field}: {exc.reason}") from None
        return self


class AgentInfo(BaseModel):
    """An agent version as the API returns it (secrets in the engine config are masked)."""

    id: str
    name: str
    version: int
    agent_version: str = Field(description="'<name>@v<version>', as events and datasets name it.")
    spec: AgentSpec
    created_at: datetime

    @classmethod
    def of(cls, record: AgentRecord) -> AgentInfo:
        """From the control-plane record."""
        return cls(
            id=record.id, name=record.name, version=record.version, agent_version=f"{record.name}@v{record.version}",
            spec=AgentSpec.model_validate(record.spec), created_at=record.created_at,
        )

    def public(self) -> AgentInfo:
        """A copy safe to return: engine API keys replaced by asterisks."""
        if not self.spec.engine:
            return self
        engine = {k: ("********" if k in _SECRET_KEYS and v else v) for k, v in self.spec.engine.items()}
        return self.model_copy(update={"spec": self.spec.model_copy(update={"engine": engine})})


def parse_agent_spec(spec: AgentSpec | Mapping[str, Any]) -> AgentSpec:
    """Validate a spec dict (from JSON, YAML or the CLI); errors name the field."""
    if isinstance(spec, AgentSpec):
        return spec
    try:
        return AgentSpec.model_validate(dict(spec))
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(agent)"
        raise ValidationFailed(field, err["msg"].removeprefix("Value error, ")) from None


def create_agent(services: Services, tenant_id: str, spec: AgentSpec | Mapping[str, Any]) -> AgentInfo:
    """Create the next version of the agent ``spec.name`` in the tenant.

    References are checked now, so a bad agent fails here rather than at its first step: pinned
    plugins must exist in the gateway with the granted scopes, and the model (checkpoint, adapter)
    must resolve — which registers the base model in the tenant on first use — unless an explicit
    engine makes the model irrelevant.
    """
    spec = parse_agent_spec(spec)
    if spec.plugins:
        from workbench.runtime.plugins import resolve_tools

        try:
            resolve_tools(services, tenant_id, spec.name, spec.plugins)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.field.replace("pins", "plugins", 1), exc.reason) from None
    if is_managed_engine(spec.engine):
        from workbench.runtime.serving import resolve_model

        resolve_model(services, tenant_id, spec.model)
    data = spec.model_dump(mode="json")
    for _attempt in range(5):
        try:
            with services.control.session() as session:
                latest = session.scalar(
                    select(func.max(AgentRecord.version)).where(
                        AgentRecord.tenant_id == tenant_id, AgentRecord.name == spec.name
                    )
                )
                record = AgentRecord(
                    id=new_id("agt"), tenant_id=tenant_id, name=spec.name, version=(latest or 0) + 1, spec=data,
                    created_at=datetime.now(UTC),
                )
                session.add(record)
            return AgentInfo.of(record)
        except IntegrityError:
            continue  # another request took this version number at the same moment: take the next
    raise ConflictError(f"could not allocate a version for agent {spec.name!r}; retry")


def get_agent(services: Services, tenant_id: str, agent_id: str) -> AgentInfo:
    """One agent version by id (404 for other tenants' agents)."""
    with services.control.session() as session:
        record = session.get(AgentRecord, agent_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFoundError("agent", agent_id)
        return AgentInfo.of(record)


def find_agent(services: Services, tenant_id: str, ref: str) -> AgentInfo:
    """An agent by id, by ``name@vN``, or by name (its newest version)."""
    with services.control.session() as session:
        record = session.get(AgentRecord, ref)
        if record is not None and record.tenant_id == tenant_id:
            return AgentInfo.of(record)
        query = select(AgentRecord).where(AgentRecord.tenant_id == tenant_id)
        name, _, version = ref.rpartition("@v")
        if name and version.isdigit():
            query = query.where(AgentRecord.name == name, AgentRecord.version == int(version))
        else:
            query = query.where(AgentRecord.name == ref)
        record = session.scalar(query.order_by(AgentRecord.version.desc()).limit(1))
        if record is None:
            raise NotFoundError("agent", ref)
        return AgentInfo.of(record)


def list_agents(services: Services, tenant_id: str, name: str | None = None) -> list[AgentInfo]:
    """The tenant's agent versions, by name, newest version first."""
    query = select(AgentRecord).where(AgentRecord.tenant_id == tenant_id)
    if name is not None:
        query = query.where(AgentRecord.name == name)
    with services.control.session() as session:
        rows = session.scalars(query.order_by(AgentRecord.name, AgentRecord.version.desc()))
        return [AgentInfo.of(r) for r in rows]
