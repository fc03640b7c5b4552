def billing(request):
    """Billing state for the banner in the base layout (filled in by the subscriptions work)."""
    return {}
