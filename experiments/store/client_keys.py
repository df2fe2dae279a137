"""Client keys: the public, read-only, revocable keys a GrowthBook SDK fetches features with.

A key is a random token in one hash (``P:client-keys``); each write is a single command (a
create is ``HSETNX``, a revoke ``HDEL``), so nothing needs a script. A key grants nothing but
the features payload, which is what any page using it shows its visitors anyway.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import cast

import orjson

from experiments.connection import guarded
from experiments.store._base import StoreBase

__all__ = ["ClientKey", "ClientKeysMixin"]

CLIENT_KEY_PREFIX = "sdk-"


@dataclass(frozen=True, slots=True)
class ClientKey:
    client_key: str
    name: str
    created_at: float


class ClientKeysMixin(StoreBase):
    @guarded
    async def create_client_key(self, *, name: str, now: float) -> ClientKey:
        """A new key (a 128-bit random token) stored with its name and creation time."""
        while True:
            token = CLIENT_KEY_PREFIX + secrets.token_urlsafe(16)
            value = orjson.dumps({"name": name, "created_at": now})
            if await self.client.hsetnx(self.keys.client_keys, token, value):
                return ClientKey(token, name, now)

    @guarded
    async def client_keys(self) -> list[ClientKey]:
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.client_keys))
        keys = []
        for token, value in raw.items():
            data = orjson.loads(value)
            keys.append(ClientKey(token, str(data["name"]), float(data["created_at"])))
        return sorted(keys, key=lambda k: (k.created_at, k.client_key))

    @guarded
    async def client_key_exists(self, client_key: str) -> bool:
        return bool(await self.client.hexists(self.keys.client_keys, client_key))

    @guarded
    async def revoke_client_key(self, client_key: str) -> bool:
        """Remove the key; False when there was none."""
        return bool(await self.client.hdel(self.keys.client_keys, client_key))
