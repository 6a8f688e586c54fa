"""Tenants, API keys, roles (RBAC) and the audit log."""

from workbench.security.audit import list_audit, purge_audit, record_audit
from workbench.security.roles import ROLE_PERMISSIONS, Permission, Role, role_allows
from workbench.security.tenants import (
    Principal,
    authenticate,
    create_key,
    create_tenant,
    find_tenant,
    get_tenant,
    list_tenants,
    revoke_key,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "authenticate",
    "create_key",
    "create_tenant",
    "find_tenant",
    "get_tenant",
    "list_audit",
    "list_tenants",
    "purge_audit",
    "record_audit",
    "revoke_key",
    "role_allows",
]
