"""Pieces shared by the ``workbench`` CLI modules: error handling, JSON output, opening a tenant."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from typing import Any

import typer

from workbench.errors import WorkbenchError


def fail_cleanly(fn):
    """Turn workbench errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def print_json(data: Any) -> None:
    """Pretty JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def open_services() -> Iterator[Any]:
    """Services on WORKBENCH_HOME for one command; engines and servers it started stop at the end."""
    from workbench.runtime import serving
    from workbench.services import Services

    services = Services()
    try:
        yield services
    finally:
        serving.close()
        services.close()


def resolve_tenant(services: Any, tenant: str) -> str:
    """The id of a tenant given by name or id; ``default`` is created on first use."""
    from workbench.errors import NotFoundError
    from workbench.security.tenants import create_tenant, find_tenant, get_tenant

    found = find_tenant(services.control, tenant)
    if found is not None:
        return found.id
    try:
        return get_tenant(services.control, tenant).id
    except NotFoundError:
        if tenant == "default":
            return create_tenant(services.control, tenant)[0].id
        raise NotFoundError("tenant", tenant) from None
