"""A bandit experiment's period history in the store, and the step that re-weights it.

The history is one field of the definitions hash (``_bandit:E:G``), so the new weights (in the
definition) and the period that records them are written by one script in one slot, with a
compare-and-set on both: of two concurrent steps (two workers, a loop and the CLI) one wins
and the other learns it lost.
"""

from __future__ import annotations

from experiments.audit import AUDIT_MAX_ENTRIES, EXPERIMENT_AUDIT_MAX_ENTRIES, AuditEntry
from experiments.bandit import BanditHistory, opening_history
from experiments.connection import guarded
from experiments.definitions import Experiment
from experiments.errors import ConflictError, ExperimentNotFoundError
from experiments.store._base import StoreBase
from experiments.store.definitions import definition_json
from experiments.store.scripts import BanditPeriodArgs, BanditPeriodKeys

__all__ = ["BanditMixin"]


class BanditMixin(StoreBase):
    @guarded
    async def _stored_history(self, experiment: Experiment) -> str:
        field = self.keys.bandit_field(experiment.key, experiment.generation)
        raw = await self.client.hget(self.keys.definitions, field)
        return "" if raw is None else str(raw)

    async def bandit_history(self, experiment: Experiment) -> BanditHistory:
        """The periods of a bandit experiment (one open period before its first step)."""
        raw = await self._stored_history(experiment)
        return BanditHistory.model_validate_json(raw) if raw else opening_history(experiment)

    @guarded
    async def record_bandit_period(
        self,
        old: Experiment,
        old_history: BanditHistory,
        new: Experiment,
        new_history: BanditHistory,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Write the re-weighted definition and its history (and ``audit``, when given) if
        neither changed since read.

        Raises :class:`ConflictError` when another step (or an edit) came first.
        """
        stored = await self._stored_history(old)
        if stored and BanditHistory.model_validate_json(stored) != old_history:
            raise ConflictError(f"bandit {old.key!r} was re-weighted concurrently; retry")
        keys = BanditPeriodKeys(
            self.keys.definitions, self.keys.audit(old.key), self.keys.audit_all
        )
        args = BanditPeriodArgs(
            old.key,
            definition_json(old),
            old.generation,
            definition_json(new),
            self.keys.generation_field(old.key),
            self.keys.bandit_field(old.key, old.generation),
            stored,
            new_history.model_dump_json(),
            "" if audit is None else audit.model_dump_json(),
            EXPERIMENT_AUDIT_MAX_ENTRIES,
            AUDIT_MAX_ENTRIES,
        )
        code = int(await self._bandit_period(keys=list(keys), args=list(args)))
        if code == -2:
            raise ExperimentNotFoundError(old.key)
        if code == 0:
            raise ConflictError(f"bandit {old.key!r} was changed concurrently; retry")
