import re

import pytest
from django.core import mail

from accounts.models import Membership

pytestmark = pytest.mark.e2e


def _link(body: str) -> str:
    return re.search(r"https?://\S+", body).group(0)


def test_sign_up_verify_create_org_invite_and_use_api_key(page, live_server, screenshot):
    # Sign up.
    page.goto("/")
    page.click("text=Sign up")
    page.fill("input[name=email]", "founder@example.org")
    page.fill("input[name=password1]", "a-Long-enough-passphrase-42")
    page.fill("input[name=password2]", "a-Long-enough-passphrase-42")
    page.click("form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "verify" in page.content().lower() or "confirm" in page.content().lower()

    # Verify through the link in the e-mail.
    verification = next(m for m in mail.outbox if "founder@example.org" in m.to)
    page.goto(_link(verification.body))
    page.click("form button[type=submit]")
    page.wait_for_load_state("networkidle")

    # Create an organisation.
    page.wait_for_url("**/org/new/")
    page.fill("input[name=name]", "Epsilon Diagnostics")
    page.click("text=Create organisation")
    page.wait_for_url("**/org/members/")
    assert "Epsilon Diagnostics" in page.content()

    # Invite a colleague.
    page.fill("input[name=email]", "colleague@example.org")
    page.select_option("#id_role", "clinician")
    page.click("text=Send invitation")
    page.wait_for_selector("text=Invitation sent to colleague@example.org")
    assert "Clinician" in page.inner_text("table:below(:text('Pending invitations'))")
    invitation = next(m for m in mail.outbox if "colleague@example.org" in m.to)
    assert "/org/invitations/accept/" in _link(invitation.body)
    screenshot("accounts-members")

    # Create an API key and call the API with it.
    page.click("nav.subnav >> text=API keys")
    page.fill("input[name=name]", "Integration test")
    page.select_option("select[name=scope]", "write")
    page.click("text=Create key")
    raw = page.inner_text("#new-key").strip()
    assert raw.startswith("lk_")
    screenshot("accounts-api-key")
    response = page.request.get(f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Api-Key {raw}"})
    assert response.status == 200
    body = response.json()
    assert body["organization"]["name"] == "Epsilon Diagnostics" and body["auth"] == "api_key"
    assert Membership.objects.filter(user__email="founder@example.org", role="owner").count() == 1
    # The key is never shown again.
    page.reload()
    assert raw not in page.content()
