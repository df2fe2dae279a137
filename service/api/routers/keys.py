"""API keys with roles: create (the secret is shown once), list, revoke. Admins only.

A key's secret is never stored: the store keeps its SHA-256 digest (:mod:`service.api.auth`),
and the id is derived from that digest, so a bearer key is found by one lookup. Revoking deletes
the record and then closes every browser session of the key; a session is also checked against
the record on each request, so even the sessions are refused from the next request on.
``ABACUS_ADMIN_KEY`` is the bootstrap admin: it is listed but cannot be revoked here.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from experiments.errors import ConflictError
from experiments.store import ApiKeyRecord
from service.api.auth import AdminKey, close_sessions, new_api_key
from service.api.deps import AdminOnly, StoreDep
from service.api.principal import BOOTSTRAP_NAME
from service.audit import entry

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])

KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$"
KEY_NAME_RULE = (
    "1-64 of letters, digits, space, '.', '_', '@' and '-', starting with a letter or digit"
)
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
RoleName = Literal["viewer", "editor", "admin"]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=KEY_NAME_PATTERN, description=KEY_NAME_RULE)
    role: RoleName = Field(
        description="viewer reads; editor also changes experiments; admin also manages keys"
    )


class KeyInfo(BaseModel):
    """A key as listed: never its secret."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    role: RoleName
    created_at: float | None = Field(description="none for the bootstrap ABACUS_ADMIN_KEY")
    bootstrap: bool = Field(description="whether this is ABACUS_ADMIN_KEY (not revocable here)")


class CreatedKey(KeyInfo):
    key: str = Field(description="the secret: shown this once, kept nowhere")


def _info(record: ApiKeyRecord) -> KeyInfo:
    return KeyInfo(
        id=record.id,
        name=record.name,
        role=record.role,
        created_at=record.created_at,
        bootstrap=False,
    )


def _public(record: ApiKeyRecord) -> dict[str, JsonValue]:
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "created_at": record.created_at,
    }


@router.post("", status_code=201, response_model=CreatedKey, summary="Create an API key")
async def create(body: NewKey, store: StoreDep, actor: AdminOnly) -> CreatedKey:
    secret = new_api_key()
    key = AdminKey.of(secret)
    record = ApiKeyRecord(
        id=key.id, name=body.name, role=body.role, digest=key.hex_digest, created_at=time.time()
    )
    audit = entry(actor, "key.create", target=record.id, after=_public(record))
    if not await store.add_api_key(record, audit):  # 64 random bits of id: never in practice
        raise ConflictError(f"a key with id {record.id!r} already exists; retry")
    return CreatedKey(**_info(record).model_dump(), key=secret)


@router.get("", response_model=list[KeyInfo], summary="List API keys (never their secrets)")
async def list_all(request: Request, store: StoreDep, actor: AdminOnly) -> list[KeyInfo]:
    keys = [_info(r) for r in await store.api_keys()]
    bootstrap: AdminKey | None = request.app.state.admin_key
    if bootstrap is not None:
        first = KeyInfo(
            id=bootstrap.id, name=BOOTSTRAP_NAME, role="admin", created_at=None, bootstrap=True
        )
        keys.insert(0, first)
    return keys


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key and close all its sessions")
async def revoke(
    request: Request,
    key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN, description="16 hex digits")],
    store: StoreDep,
    actor: AdminOnly,
) -> Response:
    bootstrap: AdminKey | None = request.app.state.admin_key
    if bootstrap is not None and key_id == bootstrap.id:
        raise HTTPException(
            status_code=403,
            detail=f"key {key_id!r} is the bootstrap admin key ABACUS_ADMIN_KEY: it cannot be "
            "revoked through the API; change ABACUS_ADMIN_KEY and restart the service",
        )
    record = await store.api_key(key_id)
    audit = entry(
        actor, "key.revoke", target=key_id, before=None if record is None else _public(record)
    )
    if record is None or not await store.remove_api_key(key_id, audit):
        raise HTTPException(status_code=404, detail=f"no API key with id {key_id!r}")
    await close_sessions(store, key_id)
    return Response(status_code=204)
