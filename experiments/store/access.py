"""API keys, share links, the workspace secret and the audit trail in the store.

Keys and share links are records in two hashes that share the definitions hash's slot (see
:mod:`experiments.keys`), so adding or removing one and writing its audit entry is a single
script (``access.lua``). A key is kept as the SHA-256 digest of its secret, never the secret.
Nothing here is cached: a revoked key or link is gone for the very next request.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict

from experiments.audit import AUDIT_MAX_ENTRIES, EXPERIMENT_AUDIT_MAX_ENTRIES, AuditEntry
from experiments.connection import guarded
from experiments.store._base import StoreBase
from experiments.store.scripts import AccessArgs, AccessKeys, SecretArgs, SecretKeys

__all__ = ["AccessMixin", "ApiKeyRecord", "ShareLinkRecord"]


class ApiKeyRecord(BaseModel):
    """A stored API key: its id, name, role and the hex SHA-256 digest of its secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    role: Literal["viewer", "editor", "admin"]
    digest: str
    created_at: float


class ShareLinkRecord(BaseModel):
    """A share link: which experiment's report it opens (the generation too, so a re-created
    experiment of the same key is not shown), until when, and who made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    experiment: str
    generation: int
    created_at: float
    expires_at: float
    created_by: str


class AccessMixin(StoreBase):
    async def _access(
        self, records: str, op: str, id_: str, record: str, audit: AuditEntry, experiment: str
    ) -> bool:
        history = self.keys.audit(experiment) if experiment else self.keys.audit_all
        keys = AccessKeys(records, history, self.keys.audit_all)
        args = AccessArgs(
            op,
            id_,
            record,
            audit.model_dump_json(),
            EXPERIMENT_AUDIT_MAX_ENTRIES,
            AUDIT_MAX_ENTRIES,
        )
        return int(await self._access_script(keys=list(keys), args=list(args))) == 1

    # -- API keys ------------------------------------------------------------------------------

    @guarded
    async def add_api_key(self, record: ApiKeyRecord, audit: AuditEntry) -> bool:
        """Store a new key with its audit entry; False if its id is taken."""
        return await self._access(
            self.keys.api_keys, "add", record.id, record.model_dump_json(), audit, ""
        )

    @guarded
    async def api_key(self, key_id: str) -> ApiKeyRecord | None:
        raw = await self.client.hget(self.keys.api_keys, key_id)
        return None if raw is None else ApiKeyRecord.model_validate_json(raw)

    @guarded
    async def api_keys(self) -> list[ApiKeyRecord]:
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.api_keys))
        records = [ApiKeyRecord.model_validate_json(v) for v in raw.values()]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    @guarded
    async def remove_api_key(self, key_id: str, audit: AuditEntry) -> bool:
        """Delete a key, writing ``audit`` with it; False if there was no such key."""
        return await self._access(self.keys.api_keys, "remove", key_id, "", audit, "")

    # -- share links ---------------------------------------------------------------------------

    @guarded
    async def workspace_secret(self, candidate: str) -> str:
        """The secret share links are signed with; ``candidate`` becomes it if there is none."""
        keys = SecretKeys(self.keys.workspace_secret)
        return str(await self._secret(keys=list(keys), args=list(SecretArgs(candidate))))

    @guarded
    async def add_share_link(self, record: ShareLinkRecord, audit: AuditEntry) -> bool:
        return await self._access(
            self.keys.share_links,
            "add",
            record.id,
            record.model_dump_json(),
            audit,
            record.experiment,
        )

    @guarded
    async def share_link(self, link_id: str) -> ShareLinkRecord | None:
        raw = await self.client.hget(self.keys.share_links, link_id)
        return None if raw is None else ShareLinkRecord.model_validate_json(raw)

    @guarded
    async def share_links(self, experiment: str) -> list[ShareLinkRecord]:
        """The links of ``experiment``, oldest first (expired ones too, until revoked)."""
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.share_links))
        records = [ShareLinkRecord.model_validate_json(v) for v in raw.values()]
        return sorted(
            (r for r in records if r.experiment == experiment), key=lambda r: (r.created_at, r.id)
        )

    @guarded
    async def remove_share_link(self, record: ShareLinkRecord, audit: AuditEntry) -> bool:
        return await self._access(
            self.keys.share_links, "remove", record.id, "", audit, record.experiment
        )

    # -- the audit trail -----------------------------------------------------------------------

    @guarded
    async def audit_entries(self, experiment: str | None = None, *, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` entries of ``experiment``, or of the workspace, newest first."""
        key = self.keys.audit_all if experiment is None else self.keys.audit(experiment)
        raw = cast(list[str], await self.client.lrange(key, 0, limit - 1))
        return [AuditEntry.model_validate_json(r) for r in raw]
