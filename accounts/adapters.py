from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request):
        """After sign-in: a pending invitation first, else an organisation to create, else home."""
        pending = request.session.pop("pending_invitation", None)
        if pending:
            return reverse("accounts:invitation-accept", kwargs={"token": pending})
        return super().get_login_redirect_url(request)
