"""Plans, quotas and seats. Placeholder until the subscriptions issue lands: no limits are enforced yet."""

from __future__ import annotations


def seats_check_available(*, organization, adding: int = 1) -> None:
    """Raise when adding `adding` members would exceed the plan's seats (no plan limits yet)."""
    return None
