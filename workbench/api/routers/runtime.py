"""Runtime Factory endpoints: agents, sessions, deployments and agent metrics."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workbench.api.auth import require
from workbench.runtime import agents, monitoring, serving, sessions
from workbench.security.roles import Permission
from workbench.security.tenants import Principal

router = APIRouter(tags=["runtime"])

# One dependency object per permission, so FastAPI authenticates a request once however many
# dependencies ask for the principal.
_require = functools.cache(require)


@functools.cache
def _owned_agent(permission: Permission):
    """A dependency that loads the caller's agent (404 for others') before the body is validated,
    so another tenant's id is a 404 whatever the body holds."""

    async def load(
        agent_id: str, request: Request, principal: Principal = Depends(_require(permission))
    ) -> agents.AgentInfo:
        return await run_in_threadpool(agents.get_agent, request.app.state.services, principal.tenant_id, agent_id)

    return load


@functools.cache
def _owned_session(permission: Permission):
    """Like :func:`_owned_agent`, for a session of that agent."""

    async def load(
        session_id: str, request: Request, agent: agents.AgentInfo = Depends(_owned_agent(permission)),
        principal: Principal = Depends(_require(permission)),
    ) -> sessions.SessionInfo:
        return await run_in_threadpool(
            sessions.get_session, request.app.state.services, principal.tenant_id, agent.id, session_id
        )

    return load


# --------------------------------------------------------------------------- agents


@router.post("/agents", status_code=201)
async def create_agent(
    spec: agents.AgentSpec, request: Request, principal: Principal = Depends(_require(Permission.AGENTS_WRITE))
) -> agents.AgentInfo:
    """Create an agent version (the same name again makes the next version).

    The model is resolved now: naming the base model registers it in the tenant on first use.
    """
    info = await run_in_threadpool(agents.create_agent, request.app.state.services, principal.tenant_id, spec)
    request.state.audit_target = f"agent:{info.id}"
    request.state.audit_detail = {"agent_version": info.agent_version}
    return info.public()


@router.get("/agents")
async def list_agents(
    request: Request, name: str | None = None, principal: Principal = Depends(_require(Permission.READ))
) -> list[agents.AgentInfo]:
    """The tenant's agent versions (filter by ``name``), newest version first per name."""
    found = await run_in_threadpool(agents.list_agents, request.app.state.services, principal.tenant_id, name)
    return [a.public() for a in found]


@router.get("/agents/{agent_id}")
async def get_agent(agent: agents.AgentInfo = Depends(_owned_agent(Permission.READ))) -> agents.AgentInfo:
    """One agent version."""
    return agent.public()


@router.get("/agents/{agent_id}/metrics")
async def agent_metrics(
    request: Request, agent: agents.AgentInfo = Depends(_owned_agent(Permission.READ)),
    principal: Principal = Depends(_require(Permission.READ)),
) -> monitoring.AgentMetrics:
    """Dashboard summary from the agent's stored turns: latency, errors, tools, safety, tokens/s, memory."""
    return await run_in_threadpool(
        monitoring.agent_metrics, request.app.state.services, principal.tenant_id, agent.id
    )


# --------------------------------------------------------------------------- sessions


@router.post("/agents/{agent_id}/sessions", status_code=201)
async def create_session(
    request: Request, agent: agents.AgentInfo = Depends(_owned_agent(Permission.SESSIONS_USE)),
    principal: Principal = Depends(_require(Permission.SESSIONS_USE)),
) -> sessions.SessionInfo:
    """Open a session with this agent version."""
    info = await run_in_threadpool(sessions.create_session, request.app.state.services, principal.tenant_id, agent.id)
    request.state.audit_target = f"session:{info.session_id}"
    return info


@router.get("/agents/{agent_id}/sessions")
async def list_sessions(
    request: Request, agent: agents.AgentInfo = Depends(_owned_agent(Permission.SESSIONS_USE)),
    principal: Principal = Depends(_require(Permission.SESSIONS_USE)),
) -> list[sessions.SessionInfo]:
    """The agent's sessions, newest first."""
    return await run_in_threadpool(sessions.list_sessions, request.app.state.services, principal.tenant_id, agent.id)


class StepIn(BaseModel):
    """One user message."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=sessions.MAX_MESSAGE_CHARS)


@router.post("/agents/{agent_id}/sessions/{session_id}/step")
async def step_session(
    body: StepIn, request: Request, session: sessions.SessionInfo = Depends(_owned_session(Permission.SESSIONS_USE)),
    principal: Principal = Depends(_require(Permission.SESSIONS_USE)),
) -> sessions.StepResult:
    """Send a message; the agent replies, calling its tools as needed.

    502 / 504 when the model failed or produced nothing in time (the turn is still recorded).
    """
    request.state.audit_target = f"session:{session.session_id}"
    return await run_in_threadpool(
        sessions.step_session, request.app.state.services, principal.tenant_id, session.agent_id,
        session.session_id, body.message,
    )


@router.get("/agents/{agent_id}/sessions/{session_id}/history")
async def session_history(
    request: Request, session: sessions.SessionInfo = Depends(_owned_session(Permission.SESSIONS_USE)),
    principal: Principal = Depends(_require(Permission.SESSIONS_USE)),
) -> sessions.SessionHistory:
    """Every turn of the session (with tool calls and latency) and the conversation so far."""
    return await run_in_threadpool(
        sessions.session_history, request.app.state.services, principal.tenant_id, session.agent_id,
        session.session_id,
    )


# --------------------------------------------------------------------------- deployments


@router.post("/deployments", status_code=201)
async def deploy(
    body: serving.DeploymentRequest, request: Request, principal: Principal = Depends(_require(Permission.MODELS_PROMOTE))
) -> serving.DeploymentInfo:
    """Serve a model checkpoint: a vLLM server (LoRA adapters loaded at runtime), or in-process
    transformers when vLLM is not installed (``note`` says which and why). Status ``starting``
    until the engine answers, unless ``wait``."""
    info = await run_in_threadpool(serving.deploy, request.app.state.services, principal.tenant_id, body)
    request.state.audit_target = f"deployment:{info.id}"
    return info


@router.get("/deployments")
async def list_deployments(
    request: Request, principal: Principal = Depends(_require(Permission.READ))
) -> list[serving.DeploymentInfo]:
    """The tenant's deployments, newest first."""
    return await run_in_threadpool(serving.list_deployments, request.app.state.services, principal.tenant_id)


@router.get("/deployments/{deployment_id}")
async def get_deployment(
    deployment_id: str, request: Request, principal: Principal = Depends(_require(Permission.READ))
) -> serving.DeploymentInfo:
    """One deployment with its live status."""
    return await run_in_threadpool(
        serving.get_deployment, request.app.state.services, principal.tenant_id, deployment_id
    )
