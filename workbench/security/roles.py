"""Roles and the permission matrix (documented in README.md, checked against it by a test)."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """One thing a key may do inside its tenant."""

    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    DATASETS_WRITE = "datasets:write"
    DATASETS_READ = "datasets:read"
    LABELS_WRITE = "labels:write"
    SCENARIOS_WRITE = "scenarios:write"
    RUNS_WRITE = "runs:write"
    TRAIN_WRITE = "train:write"
    EVAL_WRITE = "eval:write"
    MODELS_PROMOTE = "models:promote"
    AGENTS_WRITE = "agents:write"
    PLUGINS_WRITE = "plugins:write"
    SESSIONS_USE = "sessions:use"
    COMPUTE_WRITE = "compute:write"
    COMPUTE_ADMIN = "compute:admin"
    READ = "read"
    KEYS_MANAGE = "keys:manage"
    AUDIT_READ = "audit:read"
    MAINTENANCE = "maintenance"


class Role(StrEnum):
    """A named set of permissions; every API key has exactly one role."""

    ADMIN = "admin"
    RESEARCHER = "researcher"
    OPERATOR = "operator"
    LABELER = "labeler"
    VIEWER = "viewer"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.RESEARCHER: frozenset(
        {
            P.READ, P.EVENTS_WRITE, P.EVENTS_READ, P.DATASETS_WRITE, P.DATASETS_READ, P.LABELS_WRITE,
            P.SCENARIOS_WRITE, P.RUNS_WRITE, P.TRAIN_WRITE, P.EVAL_WRITE, P.MODELS_PROMOTE, P.AGENTS_WRITE,
            P.SESSIONS_USE, P.COMPUTE_WRITE,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            P.READ, P.EVENTS_WRITE, P.EVENTS_READ, P.DATASETS_READ, P.RUNS_WRITE, P.MODELS_PROMOTE,
            P.AGENTS_WRITE, P.SESSIONS_USE, P.COMPUTE_WRITE, P.MAINTENANCE,
        }
    ),
    Role.LABELER: frozenset({P.READ, P.DATASETS_READ, P.LABELS_WRITE}),
    Role.VIEWER: frozenset({P.READ, P.DATASETS_READ, P.EVENTS_READ}),
}


def role_allows(role: Role | str, permission: Permission) -> bool:
    """Whether a key of this role holds the permission."""
    return permission in ROLE_PERMISSIONS[Role(role)]
