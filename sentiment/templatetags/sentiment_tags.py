from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 0) -> str:
    """0.4231 -> '42%'."""
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.filter
def signed(value, digits: int = 2) -> str:
    try:
        return f"{float(value):+.{int(digits)}f}"
    except (TypeError, ValueError):
        return "–"


@register.filter
def width(value) -> str:
    """A probability as a CSS width: 0.42 -> '42.0%'."""
    try:
        return f"{max(0.0, min(1.0, float(value))) * 100:.1f}%"
    except (TypeError, ValueError):
        return "0%"
