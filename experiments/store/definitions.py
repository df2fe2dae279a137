"""Experiment definitions in the store: read, create, replace, delete and reclaim.

Definitions live in one hash. Creating an experiment bumps its key's generation counter in the
same script, and every data key of the experiment carries that generation, so a deleted
experiment's data is unreachable the moment its definition is gone and a re-created one starts
from nothing, even if reclaiming the old data was interrupted. Deleting keeps the old definition
under ``_deleted:E:G`` until its keys are unlinked; :meth:`DefinitionsMixin.reclaim_deleted`
finishes any reclaim left over. Reclaiming enumerates the keys from the definition (shards x
slices x events x window parts, the days set) and unlinks them a few hundred at a time, so Redis
is never blocked and nothing scans the keyspace.
"""

from __future__ import annotations

import time
from typing import cast

from experiments.audit import AUDIT_MAX_ENTRIES, EXPERIMENT_AUDIT_MAX_ENTRIES, AuditEntry
from experiments.connection import guard, guarded
from experiments.definitions import Experiment
from experiments.errors import ConflictError, ExperimentNotFoundError
from experiments.store._base import StoreBase
from experiments.store.scripts import PutDefinitionArgs, PutDefinitionKeys

__all__ = ["DefinitionsMixin", "definition_json"]

UNLINK_BATCH = 500
"""Keys per UNLINK: small enough that one command never holds Redis up."""

_EXCLUDED = {"generation"}


def definition_json(experiment: Experiment) -> str:
    """The stored text of a definition (its generation is kept apart)."""
    return experiment.model_dump_json(exclude=_EXCLUDED)


class DefinitionsMixin(StoreBase):
    @guarded
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    @guarded
    async def definitions(self) -> tuple[int, dict[str, Experiment]]:
        """The definitions version counter and every experiment, by key."""
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.definitions))
        version = int(raw.get("_version", 0))
        return version, {
            key: self._parse(value, raw.get(self.keys.generation_field(key)))
            for key, value in raw.items()
            if not key.startswith("_")
        }

    @guarded
    async def definitions_version(self) -> int:
        return int(await self.client.hget(self.keys.definitions, "_version") or 0)

    @guarded
    async def get_experiment(self, key: str) -> Experiment:
        raw, generation = cast(
            list[str | None],
            await self.client.hmget(self.keys.definitions, [key, self.keys.generation_field(key)]),
        )
        if raw is None:
            raise ExperimentNotFoundError(key)
        return self._parse(raw, generation)

    @staticmethod
    def _parse(raw: str, generation: str | None) -> Experiment:
        experiment = Experiment.model_validate_json(raw)
        return experiment.model_copy(update={"generation": int(generation or 0)})

    async def create_experiment(
        self, experiment: Experiment, *, audit: AuditEntry | None = None
    ) -> Experiment:
        """Store a new experiment; returns it with the generation the store gave it.

        ``audit``, when given, is written in the same script, and only if the write is made
        (so for :meth:`replace_experiment` and :meth:`delete_experiment`).
        """
        code = await self._put_definition(
            experiment.key, "", 0, definition_json(experiment), audit=audit
        )
        if code == -1:
            raise ConflictError(f"experiment {experiment.key!r} already exists")
        return experiment.model_copy(update={"generation": code})

    async def replace_experiment(
        self,
        old: Experiment,
        new: Experiment,
        *,
        expected_version: int | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """Write ``new`` if the stored definition is still ``old`` (else ConflictError).

        With ``expected_version``, also only if no definition changed since that version of
        :meth:`definitions` (a check against the others, such as a namespace range, holds).
        """
        code = await self._put_definition(
            old.key,
            definition_json(old),
            old.generation,
            definition_json(new),
            "" if expected_version is None else str(expected_version),
            audit=audit,
        )
        if code == -2:
            raise ExperimentNotFoundError(old.key)
        if code == 0:
            raise ConflictError(f"experiment {old.key!r} was changed concurrently; retry")

    async def delete_experiment(
        self, experiment: Experiment, *, audit: AuditEntry | None = None
    ) -> None:
        """Delete the definition, then reclaim every exposure, event and aggregate of it."""
        code = await self._put_definition(
            experiment.key, definition_json(experiment), experiment.generation, "", audit=audit
        )
        if code == -2:
            raise ExperimentNotFoundError(experiment.key)
        if code == 0:
            raise ConflictError(f"experiment {experiment.key!r} was changed concurrently; retry")
        await self._reclaim(experiment)

    @guarded
    async def adopt_unversioned(self) -> list[str]:
        """Give generation 1 to definitions stored without one (by the first store layout).

        Their exposures and events were kept under key names this layout does not read, so an
        adopted experiment keeps its definition and counts from zero; its old keys stay in
        Redis until removed by hand. ``HSETNX`` and a version bump per key: safe to run from
        several workers at once. Returns the keys adopted.
        """
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.definitions))
        adopted = [
            key
            for key in raw
            if not key.startswith("_") and self.keys.generation_field(key) not in raw
        ]
        for key in adopted:
            if await self.client.hsetnx(self.keys.definitions, self.keys.generation_field(key), 1):
                await self.client.hincrby(self.keys.definitions, "_version", 1)
        return adopted

    @guarded
    async def reclaim_deleted(self) -> int:
        """Finish reclaiming every deleted generation still pending; returns how many."""
        raw = cast(dict[str, str], await self.client.hgetall(self.keys.definitions))
        pending = 0
        for field, value in raw.items():
            if not field.startswith("_deleted:"):
                continue
            _, _, generation = field.rpartition(":")
            experiment = self._parse(value, generation)
            await self._reclaim(experiment)
            pending += 1
        return pending

    @guarded
    async def _reclaim(self, experiment: Experiment) -> None:
        parts, _ = self._dedup_parts(int(time.time() * 1000))
        events = sorted(experiment.events())
        for k in self._shards(experiment):
            days = cast(set[str], await self.client.smembers(k.days))
            names = [k.agg, k.log, *(k.day(d) for d in sorted(days))]
            names += [k.dimension(d) for d in range(len(experiment.dimensions))]
            for s in range(experiment.slices):
                names.append(k.assign(s))
                names += [k.state(s, e) for e in events]
                names += [k.event_ids(s, w) for w in parts]
            names.append(k.days)  # last: an interrupted reclaim can still find the days
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(names), UNLINK_BATCH):
                # execute_command: a cluster pipeline's unlink() would split the keys by slot
                # in a coroutine of its own; these share one slot
                pipe.execute_command("UNLINK", *names[start : start + UNLINK_BATCH])
            await guard(pipe.execute())
        if experiment.dimensions:
            await self.client.unlink(
                self.keys.dimension_values(experiment.key, experiment.generation)
            )
        field = self.keys.deleted_prefix(experiment.key) + str(experiment.generation)
        history = self.keys.bandit_field(experiment.key, experiment.generation)
        await self.client.hdel(self.keys.definitions, history, field)

    @guarded
    async def _put_definition(
        self,
        key: str,
        expected: str,
        expected_generation: int,
        new: str,
        version: str = "",
        *,
        audit: AuditEntry | None = None,
    ) -> int:
        keys = PutDefinitionKeys(self.keys.definitions, self.keys.audit(key), self.keys.audit_all)
        args = PutDefinitionArgs(
            key,
            expected,
            expected_generation,
            new,
            self.keys.generation_field(key),
            self.keys.deleted_prefix(key),
            version,
            "" if audit is None else audit.model_dump_json(),
            EXPERIMENT_AUDIT_MAX_ENTRIES,
            AUDIT_MAX_ENTRIES,
        )
        return int(await self._put(keys=list(keys), args=list(args)))
