"""The published case studies Abacus reproduces as demo experiments.

No raw traffic was published for them, so the demo simulates visitors whose true effects are the
published lifts. Baselines, traffic and durations not given in the sources are plausible values
chosen here and marked as such.

- UK Tool Centre removed a filter menu from a product page: +27% product-page engagement.
- Buyakilt.com added product filters to category pages: +26% conversion rate, +76.1% revenue,
  +19.76% cart visits. Its demo also breaks results down by device and watches refunds as a
  lower-is-better guardrail (no true change: refunds were not published).
- Archive Social: +101.68% email-field clicks (27 days), +64.76% conversions on a pricing page
  (7 weeks), +73.30% traffic to a resources page (10 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARCHIVE_SOCIAL_EMAIL",
    "ARCHIVE_SOCIAL_PRICING",
    "ARCHIVE_SOCIAL_RESOURCES",
    "BUYAKILT",
    "CASE_STUDIES",
    "UK_TOOL_CENTRE",
    "CaseStudy",
    "TrueEffect",
]


@dataclass(frozen=True)
class TrueEffect:
    """A metric's simulated truth: the control's value and the variant's relative lift."""

    metric: str
    baseline: float  # conversion rate, or mean per visitor (chosen here: not published)
    relative_lift: float  # published


@dataclass(frozen=True)
class CaseStudy:
    key: str
    definition: dict[str, Any]
    effects: tuple[TrueEffect, ...]
    days: int
    visitors_per_day: int  # chosen here so that the published lift is detectable
    source: str

    @property
    def variant(self) -> str:
        return str(self.definition["variants"][1]["key"])


def _two_variants(control: str, variant: str, name: str) -> list[dict[str, Any]]:
    return [
        {"key": "control", "name": control, "weight": 0.5},
        {"key": variant, "name": name, "weight": 0.5},
    ]


UK_TOOL_CENTRE = CaseStudy(
    key="uk-tool-centre",
    definition={
        "key": "uk-tool-centre",
        "name": "Remove the filter menu from the product page",
        "hypothesis": "Without the filter menu, shoppers look at the product instead of leaving",
        "variants": _two_variants("With filter menu", "no-filter-menu", "Without filter menu"),
        "metrics": [
            {
                "name": "engagement",
                "kind": "conversion",
                "event": "product_engagement",
                "primary": True,
            },
        ],
        "minimum_detectable_effect": 0.15,
    },
    effects=(TrueEffect("engagement", 0.20, 0.27),),
    days=21,
    visitors_per_day=800,
    source="UK Tool Centre: +27% product-page engagement after removing a filter menu",
)

# Revenue per visitor = conversion rate x orders per buyer x order value, so a +76.1% revenue
# lift with +26% conversion means buyers in the variant spend 1.761 / 1.26 = 1.398x as much.
BUYAKILT = CaseStudy(
    key="buyakilt-filters",
    definition={
        "key": "buyakilt-filters",
        "name": "Product filters on category pages",
        "hypothesis": "Filters by kilt type and pattern help shoppers find what they want",
        "variants": _two_variants("No filters", "filters", "Filters by type and pattern"),
        "metrics": [
            {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
            {"name": "revenue", "kind": "mean", "event": "purchase", "unit": "£"},
            {"name": "orders", "kind": "count", "event": "purchase", "unit": "orders"},
            {"name": "cart_visits", "kind": "count", "event": "cart_view", "unit": "visits"},
            {
                "name": "aov",
                "kind": "ratio",
                "numerator": "revenue",
                "denominator": "orders",
                "unit": "£",
            },
            {
                "name": "refunds",
                "kind": "count",
                "event": "refund",
                "direction": "lower",
                "guardrail": True,
                "unit": "refunds",
            },
        ],
        "dimensions": ["device"],
        "minimum_detectable_effect": 0.2,
    },
    effects=(
        TrueEffect("conversion", 0.03, 0.26),
        TrueEffect("revenue", 0.03 * 180.0, 0.761),
        TrueEffect("cart_visits", 0.40, 0.1976),
        # Not published: refunds per visitor (chosen here) with no true change, so the
        # guardrail holds while filters win; it shows a lower-is-better metric in the report.
        TrueEffect("refunds", 0.004, 0.0),
    ),
    days=28,
    visitors_per_day=2500,
    source="Buyakilt.com: +26% conversion, +76.1% revenue, +19.76% cart visits with filters",
)

ARCHIVE_SOCIAL_EMAIL = CaseStudy(
    key="archive-social-email-field",
    definition={
        "key": "archive-social-email-field",
        "name": "Email field on the landing page",
        "hypothesis": "An inline email field invites more sign-up starts than a button",
        "variants": _two_variants("Sign-up button", "email-field", "Inline email field"),
        "metrics": [
            {
                "name": "email_field_clicks",
                "kind": "conversion",
                "event": "email_field_click",
                "primary": True,
            },
        ],
        "minimum_detectable_effect": 0.3,
    },
    effects=(TrueEffect("email_field_clicks", 0.05, 1.0168),),
    days=27,
    visitors_per_day=400,
    source="Archive Social: +101.68% email-field clicks over 27 days",
)

ARCHIVE_SOCIAL_PRICING = CaseStudy(
    key="archive-social-pricing",
    definition={
        "key": "archive-social-pricing",
        "name": "Pricing page redesign",
        "hypothesis": "A clearer plan comparison converts more pricing-page visitors",
        "variants": _two_variants("Current pricing page", "redesign", "Redesigned pricing page"),
        "metrics": [
            {"name": "conversions", "kind": "conversion", "event": "signup", "primary": True},
        ],
        "minimum_detectable_effect": 0.3,
    },
    effects=(TrueEffect("conversions", 0.04, 0.6476),),
    days=49,
    visitors_per_day=250,
    source="Archive Social: +64.76% conversions on the pricing page over 7 weeks",
)

ARCHIVE_SOCIAL_RESOURCES = CaseStudy(
    key="archive-social-resources",
    definition={
        "key": "archive-social-resources",
        "name": "Resources link in the main navigation",
        "hypothesis": "A visible resources link sends more visitors to the resources page",
        "variants": _two_variants("Resources in footer", "nav-link", "Resources in navigation"),
        "metrics": [
            {
                "name": "resources_visits",
                "kind": "conversion",
                "event": "resources_view",
                "primary": True,
            },
        ],
        "minimum_detectable_effect": 0.3,
    },
    effects=(TrueEffect("resources_visits", 0.06, 0.7330),),
    days=10,
    visitors_per_day=1000,
    source="Archive Social: +73.30% traffic to the resources page over 10 days",
)

CASE_STUDIES: tuple[CaseStudy, ...] = (
    UK_TOOL_CENTRE,
    BUYAKILT,
    ARCHIVE_SOCIAL_EMAIL,
    ARCHIVE_SOCIAL_PRICING,
    ARCHIVE_SOCIAL_RESOURCES,
)
