"""One error body for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
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


def _api_path(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception=None):
    """404 for the whole site: the API's JSON error body under /api/, the site's page elsewhere."""
    from django.views import defaults

    if _api_path(request):
        return JsonResponse({"error": {"code": "not_found", "message": f"No API endpoint or object at {request.path}; "
                                       "see /api/docs/ for the endpoints.", "details": {}}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """500: never a stack trace; JSON under /api/ so clients can parse it."""
    from django.views import defaults

    if _api_path(request):
        return JsonResponse({"error": {"code": "server_error", "message": "The server failed to handle this request; "
                                       "it has been logged. Try again, and contact support if it persists.",
                                       "details": {}}}, status=500)
    return defaults.server_error(request)
