"""Workspace settings (admin role only): the webhook that receives notifications.

``PUT /v1/workspace/webhook`` sets the URL (and optionally the signing secret), ``GET`` shows
it without the secret, ``DELETE`` removes it; ``POST .../test`` sends a ``ping`` now and
answers with what the receiver said; ``GET .../deliveries`` lists the last attempts.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from experiments.webhooks import (
    DELIVERY_LOG_LENGTH,
    DeliveryAttempt,
    Webhook,
    WebhookSpec,
    WebhookView,
)
from service.api.deps import StoreDep, require
from service.api.principal import Role
from service.notify import Notifier

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/workspace", tags=["workspace"], dependencies=[Depends(require(Role.ADMIN))]
)


async def _notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


NotifierDep = Annotated[Notifier, Depends(_notifier)]


def _no_webhook() -> HTTPException:
    return HTTPException(
        status_code=404,
        detail='no webhook is set; set one with PUT /v1/workspace/webhook {"url": ...}',
    )


@router.put("/webhook", response_model=WebhookView, summary="Set the workspace's webhook")
async def put_webhook(spec: WebhookSpec, store: StoreDep) -> WebhookView:
    webhook = Webhook(url=spec.url, secret=spec.secret, updated_at=time.time())
    await store.put_webhook(webhook)
    return webhook.view()


@router.get("/webhook", response_model=WebhookView, summary="The workspace's webhook (no secret)")
async def get_webhook(store: StoreDep) -> WebhookView:
    webhook = await store.webhook()
    if webhook is None:
        raise _no_webhook()
    return webhook.view()


@router.delete("/webhook", status_code=204, summary="Remove the workspace's webhook")
async def delete_webhook(store: StoreDep) -> Response:
    if not await store.delete_webhook():
        raise _no_webhook()
    return Response(status_code=204)


@router.post(
    "/webhook/test",
    response_model=DeliveryAttempt,
    summary="Send a ping event now (one attempt) and show the receiver's answer",
)
async def test_webhook(notifier: NotifierDep) -> DeliveryAttempt:
    attempt = await notifier.ping()
    if attempt is None:
        raise _no_webhook()
    return attempt


@router.get(
    "/webhook/deliveries",
    response_model=list[DeliveryAttempt],
    summary="The last webhook delivery attempts, newest first",
)
async def deliveries(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=DELIVERY_LOG_LENGTH)] = 50,
) -> list[DeliveryAttempt]:
    return await store.deliveries(limit)
