"""One error body for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from accounts.exceptions import ServiceError


def _message(detail) -> str:
    if isinstance(detail, list | tuple):
        return " ".join(_message(d) for d in detail)
    if isinstance(detail, dict):
        return " ".join(f"{k}: {_message(v)}" for k, v in detail.items())
    return str(detail)


def api_exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({"error": {"code": exc.code, "message": exc.message, "details": exc.details}},
                        status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"code": "invalid", "message": "Some fields are not valid: " + _message(exc.detail),
                "details": exc.detail}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        body = {"code": codes if isinstance(codes, str) else "error", "message": _message(response.data.get(
            "detail", response.data) if isinstance(response.data, dict) else response.data), "details": {}}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
        body["details"] = {"retry_after_seconds": exc.wait}
    response.data = {"error": body}
    return response
