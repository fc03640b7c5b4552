"""The plan catalogue as shipped. Migration 0002 seeds a frozen copy; `plan_catalogue_seed` restores these rows
(fresh databases in transactional tests, operators resetting a demo)."""

from decimal import Decimal


def _plan(**fields) -> dict:
    return fields


PLANS = [
    _plan(code="free", name="Free", sort_order=0, tagline="Try Lumen Insight with a small team.",
         price_month=Decimal("0"), price_quarter=Decimal("0"), price_year=Decimal("0"), trial_days=0,
         images_per_month=50, texts_per_month=1000, seats=3, api_access=True, max_concurrent_jobs=1,
         overage_allowed=False, overage_price_image=Decimal("0"), overage_price_text=Decimal("0")),
    _plan(code="starter", name="Starter", sort_order=1, tagline="For a clinic or a small research desk.",
         price_month=Decimal("49"), price_quarter=Decimal("135"), price_year=Decimal("490"), trial_days=14,
         images_per_month=500, texts_per_month=10000, seats=5, api_access=True, max_concurrent_jobs=2,
         overage_allowed=False, overage_price_image=Decimal("0"), overage_price_text=Decimal("0")),
    _plan(code="pro", name="Pro", sort_order=2, tagline="For departments and trading teams; pay as you grow.",
         price_month=Decimal("199"), price_quarter=Decimal("549"), price_year=Decimal("1990"), trial_days=14,
         images_per_month=5000, texts_per_month=100000, seats=20, api_access=True, max_concurrent_jobs=5,
         overage_allowed=True, overage_price_image=Decimal("0.0800"), overage_price_text=Decimal("0.0020")),
    _plan(code="enterprise", name="Enterprise", sort_order=3, tagline="Hospital groups and funds at volume.",
         price_month=Decimal("899"), price_quarter=Decimal("2490"), price_year=Decimal("8990"), trial_days=30,
         images_per_month=50000, texts_per_month=1000000, seats=200, api_access=True, max_concurrent_jobs=20,
         overage_allowed=True, overage_price_image=Decimal("0.0500"), overage_price_text=Decimal("0.0010")),
]

FREE_PLAN = next(p for p in PLANS if p["code"] == "free")
