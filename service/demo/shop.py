"""The demo shop: a Buyakilt category page that integrates the browser SDK as a site would.

``GET /demo/shop`` serves it; the filters panel only appears for visitors in the ``filters``
variant of the Buyakilt case study, and a purchase is tracked with its price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from service.jinja import render

__all__ = ["KILTS", "Kilt", "shop_html"]


@dataclass(frozen=True)
class Kilt:
    name: str
    kind: str
    tartan: str
    price: Decimal
    colours: tuple[str, str, str]


KILTS: tuple[Kilt, ...] = (
    Kilt(
        "Black Watch 8-yard kilt",
        "Traditional",
        "Black Watch",
        Decimal("389.00"),
        ("#1d2b4f", "#17462e", "#0b0b0b"),
    ),
    Kilt(
        "Royal Stewart 8-yard kilt",
        "Traditional",
        "Royal Stewart",
        Decimal("399.00"),
        ("#b3121d", "#15365f", "#e8c547"),
    ),
    Kilt(
        "Hunting Stewart 5-yard kilt",
        "Traditional",
        "Hunting Stewart",
        Decimal("249.00"),
        ("#1f4a32", "#1d2b4f", "#a3161f"),
    ),
    Kilt(
        "Royal Stewart casual kilt",
        "Casual",
        "Royal Stewart",
        Decimal("89.90"),
        ("#c0141f", "#17365c", "#f2f2f2"),
    ),
    Kilt(
        "Grey Granite casual kilt",
        "Casual",
        "Grey Granite",
        Decimal("69.90"),
        ("#6b6f75", "#2e3136", "#c9ccd1"),
    ),
    Kilt(
        "MacLeod of Lewis hybrid kilt",
        "Hybrid",
        "MacLeod of Lewis",
        Decimal("129.00"),
        ("#f0c419", "#111111", "#b3121d"),
    ),
    Kilt(
        "Black Watch utility kilt",
        "Utility",
        "Black Watch",
        Decimal("79.90"),
        ("#1d2b4f", "#17462e", "#111111"),
    ),
    Kilt(
        "Grey Granite utility kilt",
        "Utility",
        "Grey Granite",
        Decimal("74.90"),
        ("#5d6167", "#33363b", "#b8bbc0"),
    ),
)


def shop_html(experiment: str, *, state: str, mode: str) -> str:
    """The shop page for ``experiment`` in ``state`` (its status, "missing" or "unknown"),
    with the SDK deciding in ``mode`` ("local" or "server")."""
    return render(
        "shop.html",
        experiment=experiment,
        state=state,
        mode=mode,
        kilts=KILTS,
        kinds=sorted({k.kind for k in KILTS}),
        tartans=sorted({k.tartan for k in KILTS}),
    )
