"""Browser sessions and sign-in attempts: small server-side records that expire by themselves.

A session is stored under the SHA-256 of its random token (the token itself lives only in the
browser's cookie), in the hash slot of the key it belongs to, holding that key's session epoch
at opening. Closing one session deletes it; closing every session of a key bumps the key's
epoch, so each of them fails its next check, however many there are, in one O(1) write.
Failed sign-ins are counted per client in a window that starts with the first failure.
"""

from __future__ import annotations

from experiments.connection import guarded
from experiments.store._base import StoreBase
from experiments.store.scripts import (
    AttemptArgs,
    AttemptKeys,
    SessionArgs,
    SessionKeys,
)

__all__ = ["SessionsMixin"]


class SessionsMixin(StoreBase):
    async def _session_call(self, key_id: str, token_digest: str, op: str, ttl_ms: int) -> int:
        keys = SessionKeys(self.keys.session(key_id, token_digest), self.keys.session_epoch(key_id))
        return int(await self._session(keys=list(keys), args=list(SessionArgs(op, ttl_ms))))

    @guarded
    async def open_session(self, key_id: str, token_digest: str, *, ttl_seconds: int) -> None:
        """Remember a session of ``key_id`` for ``ttl_seconds``."""
        await self._session_call(key_id, token_digest, "open", ttl_seconds * 1000)

    @guarded
    async def session_valid(self, key_id: str, token_digest: str) -> bool:
        """Whether the session exists, has not expired and was not closed."""
        return await self._session_call(key_id, token_digest, "check", 0) == 1

    @guarded
    async def close_session(self, key_id: str, token_digest: str) -> bool:
        """Close one session; whether it was open."""
        return await self._session_call(key_id, token_digest, "close", 0) == 1

    @guarded
    async def close_sessions(self, key_id: str) -> None:
        """Close every session of ``key_id``."""
        await self._session_call(key_id, "", "close_all", 0)

    @guarded
    async def count_failure(self, client: str, *, window_seconds: int) -> tuple[int, float]:
        """Count a failed sign-in of ``client``: failures in the window and seconds it has left."""
        keys = AttemptKeys(self.keys.login_failures(client))
        count, left_ms = await self._attempt(
            keys=list(keys), args=list(AttemptArgs(window_seconds * 1000))
        )
        return int(count), int(left_ms) / 1000

    @guarded
    async def failures(self, client: str) -> int:
        """Failed sign-ins of ``client`` in its current window."""
        value = await self.client.get(self.keys.login_failures(client))
        return int(value or 0)
