"""Typed errors raised by services; views and the API map them to responses in one place each."""


class ServiceError(Exception):
    """A request we refuse for a reason the user can act on. `code` is stable for API clients."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class PermissionDenied(ServiceError):
    code = "permission_denied"
    status = 403


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class Conflict(ServiceError):
    code = "conflict"
    status = 409
