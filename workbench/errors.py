"""Errors that are part of the interface: each maps to one HTTP status and one CLI message."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""

    status_code = 400

    def to_dict(self) -> dict:
        """JSON body for the API."""
        return {"error": type(self).__name__, "detail": str(self)}


class ValidationFailed(WorkbenchError):
    """Input is invalid: names the field and why."""

    status_code = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def to_dict(self) -> dict:
        return {"error": "validation_failed", "field": self.field, "detail": self.reason}


class NotFoundError(WorkbenchError):
    """The object does not exist in the caller's tenant (other tenants' objects look the same)."""

    status_code = 404

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} not found")


class ConflictError(WorkbenchError):
    """The request conflicts with existing state."""

    status_code = 409


class OverloadedError(WorkbenchError):
    """The service is saturated; retry after ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
