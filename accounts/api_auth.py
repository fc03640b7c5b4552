"""`Authorization: Api-Key <key>` for the REST API. The middleware resolves the key; this reports the result."""

from rest_framework import authentication, exceptions

from accounts.tenancy import API_KEY_HEADER_PREFIX


class ApiKeyUser:
    """Stands in for a user when the key's creator is gone; carries no permissions of its own."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = None
    id = None

    def __init__(self, api_key) -> None:
        self.api_key = api_key
        self.email = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.email


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(API_KEY_HEADER_PREFIX):
            return None
        key = getattr(request._request, "api_key", None)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key. Create a new key under "
                                                  "Organisation > API keys.")
        user = key.created_by if key.created_by is not None and key.created_by.is_active else ApiKeyUser(key)
        return user, key

    def authenticate_header(self, request) -> str:
        return self.keyword
