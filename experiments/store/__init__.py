"""The Redis adapter: definitions, exposures, events and the aggregates read back from them.

Every write that touches more than one key is one Lua script (``experiments/lua``, their
KEYS/ARGV layout in :mod:`.scripts`), so concurrent requests can neither double count, lose an
event, nor give one visitor two variants; each script touches one cluster slot. Per-variant
aggregates hold exactly the sufficient statistics the stats need (``n``, sum, sum of squares of
per-visitor totals, cross products for ratios), so a read-out costs O(variants x metrics x
shards) reads however many visitors there are. The keyspace is in :mod:`experiments.keys`, the
packed encodings in :mod:`.codec`.

:class:`Store` is put together from one part per job: definitions (:mod:`.definitions`),
exposures and tracking (:mod:`.tracking`), read-outs (:mod:`.readouts`), the raw logs
(:mod:`.logs`), the GrowthBook SDKs' client keys (:mod:`.client_keys`), browser sessions
(:mod:`.sessions`), bandit periods (:mod:`.bandit`), API keys, share links and the audit
trail (:mod:`.access`), and the workspace webhook (:mod:`.webhooks`).
"""

from __future__ import annotations

from experiments.connection import connect
from experiments.store._base import Client
from experiments.store.access import AccessMixin as _Access
from experiments.store.access import ApiKeyRecord, ShareLinkRecord
from experiments.store.bandit import BanditMixin as _Bandit
from experiments.store.client_keys import ClientKey
from experiments.store.client_keys import ClientKeysMixin as _ClientKeys
from experiments.store.codec import day_of
from experiments.store.definitions import DefinitionsMixin as _Definitions
from experiments.store.logs import ARRIVAL_SLACK_MS, LogPage, LogSnapshot
from experiments.store.logs import LogsMixin as _Logs
from experiments.store.readouts import OTHER_VALUE, SliceTotals, VariantTotals
from experiments.store.readouts import ReadoutsMixin as _Readouts
from experiments.store.sessions import SessionsMixin as _Sessions
from experiments.store.tracking import (
    Exposure,
    TrackEvent,
    TrackOutcome,
    dimension_text,
    encode_attributes,
)
from experiments.store.tracking import TrackingMixin as _Tracking
from experiments.store.webhooks import WebhooksMixin as _Webhooks

__all__ = [
    "ARRIVAL_SLACK_MS",
    "OTHER_VALUE",
    "ApiKeyRecord",
    "Client",
    "ClientKey",
    "Exposure",
    "LogPage",
    "LogSnapshot",
    "ShareLinkRecord",
    "SliceTotals",
    "Store",
    "TrackEvent",
    "TrackOutcome",
    "VariantTotals",
    "connect",
    "day_of",
    "dimension_text",
    "encode_attributes",
]


class Store(
    _Definitions,
    _Tracking,
    _Readouts,
    _Logs,
    _ClientKeys,
    _Sessions,
    _Bandit,
    _Access,
    _Webhooks,
):
    """Abacus's state in one Redis (or Redis Cluster) behind typed methods."""
