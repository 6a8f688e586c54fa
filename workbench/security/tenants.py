"""Tenants and their API keys. Keys are random, shown once, and stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.roles import Role
from workbench.store.control import ControlPlane
from workbench.store.models import ApiKey, Tenant

_KEY_PREFIX = "wb_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's id, its tenant and its role."""

    key_id: str
    tenant_id: str
    role: Role

    @property
    def actor(self) -> str:
        """The name audit records use for this caller."""
        return self.key_id


def new_id(prefix: str) -> str:
    """A sortable-enough unique id with a readable type prefix, e.g. ``ds_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def hash_key(api_key: str) -> str:
    """SHA-256 of a key; keys carry 240 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_tenant(cp: ControlPlane, name: str) -> tuple[Tenant, str]:
    """Create a tenant and its first admin key; returns the tenant and the plaintext key."""
    name = name.strip()
    if not name:
        raise ValidationFailed("name", "a tenant name must not be empty")
    tenant = Tenant(id=new_id("ten"), name=name, created_at=datetime.now(UTC))
    try:
        with cp.session() as session:
            session.add(tenant)
    except IntegrityError:
        raise ConflictError(f"a tenant named {name!r} already exists") from None
    _, key = create_key(cp, tenant.id, Role.ADMIN, name="initial admin key")
    return tenant, key


def get_tenant(cp: ControlPlane, tenant_id: str) -> Tenant:
    """A tenant by id, or NotFoundError."""
    with cp.session() as session:
        tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError("tenant", tenant_id)
    return tenant


def find_tenant(cp: ControlPlane, name: str) -> Tenant | None:
    """A tenant by name, or None."""
    with cp.session() as session:
        return session.scalar(select(Tenant).where(Tenant.name == name))


def list_tenants(cp: ControlPlane) -> list[Tenant]:
    """Every tenant, oldest first."""
    with cp.session() as session:
        return list(session.scalars(select(Tenant).order_by(Tenant.created_at)))


def create_key(cp: ControlPlane, tenant_id: str, role: Role | str, name: str | None = None) -> tuple[ApiKey, str]:
    """Issue a key of ``role`` for ``tenant_id``; returns the record and the plaintext key (shown once)."""
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed("role", f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
    get_tenant(cp, tenant_id)
    plaintext = _KEY_PREFIX + secrets.token_urlsafe(30)
    record = ApiKey(
        id=new_id("key"), tenant_id=tenant_id, role=role.value, key_hash=hash_key(plaintext),
        name=name, created_at=datetime.now(UTC),
    )
    with cp.session() as session:
        session.add(record)
    return record, plaintext


def revoke_key(cp: ControlPlane, tenant_id: str, key_id: str) -> None:
    """Revoke a key of this tenant; later calls with it get 401."""
    with cp.session() as session:
        record = session.get(ApiKey, key_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFoundError("api key", key_id)
        record.revoked_at = datetime.now(UTC)


class KeyCache:
    """Recently authenticated keys, so hot paths skip a database read per request.

    Entries live ``ttl_s`` seconds; a revocation through this process drops its entry at once,
    one through another process takes effect within ``ttl_s``.
    """

    def __init__(self, cp: ControlPlane, ttl_s: float = 2.0) -> None:
        self._cp = cp
        self._ttl = ttl_s
        self._entries: dict[str, tuple[Principal, float]] = {}

    def authenticate(self, api_key: str) -> Principal | None:
        """Like :func:`authenticate`, served from the cache when fresh."""
        import time

        digest = hash_key(api_key)
        hit = self._entries.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = authenticate(self._cp, api_key)
        if principal is None:
            self._entries.pop(digest, None)
        else:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (principal, now + self._ttl)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key's entry (after revoking it)."""
        for digest, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                self._entries.pop(digest, None)


def authenticate(cp: ControlPlane, api_key: str) -> Principal | None:
    """The principal behind a plaintext key, or None if it is unknown or revoked."""
    with cp.session() as session:
        record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(api_key)))
    if record is None or record.revoked_at is not None:
        return None
    return Principal(key_id=record.id, tenant_id=record.tenant_id, role=Role(record.role))
