"""The workspace webhook in Redis: its settings, the notifications already claimed, the attempts.

All three keys share the hash tag ``{_notify}``, and each write is one command, so nothing
needs a script: the settings are one JSON string (``SET``), claiming a notification is
``HSETNX`` (of any number of workers or processes exactly one gets ``1`` and sends it), and
an attempt is one ``XADD`` with an exact ``MAXLEN``, which appends and trims atomically.
"""

from __future__ import annotations

from typing import cast

from experiments.connection import guarded
from experiments.store._base import StoreBase
from experiments.webhooks import DELIVERY_LOG_LENGTH, DeliveryAttempt, EventKind, Webhook

__all__ = ["WebhooksMixin", "notification_field"]


def notification_field(
    experiment: str, generation: int, kind: EventKind, metric: str | None
) -> str:
    """The ``P:{_notify}:sent`` field of one notification (a re-created experiment is new)."""
    field = f"{experiment}:{generation}:{kind.value}"
    return field if metric is None else f"{field}:{metric}"


class WebhooksMixin(StoreBase):
    @guarded
    async def webhook(self) -> Webhook | None:
        """The workspace's webhook, or None when none is set."""
        raw = await self.client.get(self.keys.webhook)
        return None if raw is None else Webhook.model_validate_json(raw)

    @guarded
    async def put_webhook(self, webhook: Webhook) -> None:
        await self.client.set(self.keys.webhook, webhook.model_dump_json())

    @guarded
    async def delete_webhook(self) -> bool:
        """Remove the webhook; False when there was none."""
        return bool(await self.client.delete(self.keys.webhook))

    @guarded
    async def claim_notification(self, field: str, delivery_id: str) -> bool:
        """Claim the right to send one notification: True for exactly one caller, ever."""
        return bool(await self.client.hsetnx(self.keys.webhook_sent, field, delivery_id))

    @guarded
    async def claimed_notifications(self) -> dict[str, str]:
        """Every notification claimed so far: its field -> delivery id."""
        return cast(dict[str, str], await self.client.hgetall(self.keys.webhook_sent))

    @guarded
    async def record_delivery(self, attempt: DeliveryAttempt) -> None:
        """Append an attempt to the delivery log, dropping the oldest past its length."""
        await self.client.xadd(
            self.keys.webhook_deliveries,
            {"d": attempt.model_dump_json()},
            maxlen=DELIVERY_LOG_LENGTH,
            approximate=False,
        )

    @guarded
    async def deliveries(self, limit: int = DELIVERY_LOG_LENGTH) -> list[DeliveryAttempt]:
        """The last ``limit`` attempts, newest first."""
        rows = cast(
            list[tuple[str, dict[str, str]]],
            await self.client.xrevrange(self.keys.webhook_deliveries, count=limit),
        )
        return [DeliveryAttempt.model_validate_json(fields["d"]) for _, fields in rows]
