from decimal import Decimal

from django import template

register = template.Library()

SYMBOLS = {"gbp": "£", "eur": "€", "usd": "$"}


@register.filter
def money_minor(amount: int | None, currency: str = "gbp") -> str:
    """Minor units (pence) to a display amount: 4900, "gbp" -> "£49.00"."""
    value = Decimal(amount or 0) / 100
    symbol = SYMBOLS.get((currency or "").lower())
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {(currency or '').upper()}"
