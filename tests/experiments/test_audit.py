"""Which action a definition change is, and the fields an audit entry keeps (pure), plus the
store's side: an entry is written with its change, never without it, and the lists are bounded."""

from __future__ import annotations

import pytest

from experiments import audit as audit_module
from experiments.audit import AuditActor, AuditEntry, definition_change
from experiments.definitions import Experiment, ExperimentPatch, Status, apply_patch, transition
from experiments.errors import ConflictError
from experiments.store import Store
from experiments.store import definitions as store_definitions
from tests.conftest import StoreRunner
from tests.service.conftest import BUYAKILT

DRAFT = Experiment.model_validate({**BUYAKILT, "coverage": 0.5})


def _patched(experiment: Experiment, **fields: object) -> Experiment:
    return apply_patch(experiment, ExperimentPatch.model_validate(fields))


def test_create_and_delete_keep_the_whole_definition() -> None:
    action, before, after = definition_change(None, DRAFT)
    assert (action, before) == ("create", None)
    assert after is not None and after["key"] == "buyakilt-filters" and "generation" not in after
    assert after == DRAFT.model_dump(mode="json", exclude={"generation"})
    action, before, after = definition_change(DRAFT, None)
    assert (action, after) == ("delete", None) and before == DRAFT.model_dump(
        mode="json", exclude={"generation"}
    )
    with pytest.raises(ValueError, match="got neither"):
        definition_change(None, None)


def test_each_lifecycle_move_is_named_with_the_fields_it_changed() -> None:
    running = transition(DRAFT, Status.RUNNING, now=100.0)
    paused = transition(running, Status.PAUSED, now=200.0)
    resumed = transition(paused, Status.RUNNING, now=300.0)
    stopped = transition(resumed, Status.STOPPED, now=400.0, winner="filters")
    assert definition_change(DRAFT, running) == (
        "start",
        {"started_at": None, "status": "draft"},
        {"started_at": 100.0, "status": "running"},
    )
    assert definition_change(running, paused) == (
        "pause",
        {"status": "running"},
        {"status": "paused"},
    )
    assert definition_change(paused, resumed)[0] == "resume"
    assert definition_change(resumed, stopped) == (
        "stop",
        {"status": "running", "stopped_at": None, "winner": None},
        {"status": "stopped", "stopped_at": 400.0, "winner": "filters"},
    )


def test_ramp_force_and_edit() -> None:
    running = transition(DRAFT, Status.RUNNING, now=100.0)
    assert definition_change(running, _patched(running, coverage=1.0)) == (
        "ramp",
        {"coverage": 0.5},
        {"coverage": 1.0},
    )
    forced = _patched(running, forced={"qa-1": "filters"})
    assert definition_change(running, forced) == (
        "force",
        {"forced": {}},
        {"forced": {"qa-1": "filters"}},
    )
    assert definition_change(forced, running)[0] == "unforce"
    renamed = _patched(running, name="New name", coverage=0.8)
    action, before, after = definition_change(running, renamed)
    assert action == "edit"
    assert before == {"coverage": 0.5, "name": BUYAKILT["name"]}
    assert after == {"coverage": 0.8, "name": "New name"}


def _entry(action: str = "edit", at: float = 1.0) -> AuditEntry:
    actor = AuditActor(name="ana", role="editor", key_id="0123456789abcdef")
    return AuditEntry.model_validate(
        {
            "at": at,
            "actor": actor,
            "action": action,
            "experiment": DRAFT.key,
            "before": None,
            "after": None,
        }
    )


def test_the_entry_is_written_with_the_change_and_not_without_it(store: StoreRunner) -> None:
    async def work(s: Store) -> list[list[AuditEntry]]:
        created = await s.create_experiment(DRAFT, audit=_entry("create", 1.0))
        renamed = _patched(created, name="Renamed")
        await s.replace_experiment(created, renamed, audit=_entry("edit", 2.0))
        seen = [await s.audit_entries(DRAFT.key, limit=10)]
        # a write that fails its compare-and-set leaves no entry
        with pytest.raises(ConflictError):
            await s.replace_experiment(created, renamed, audit=_entry("edit", 3.0))
        with pytest.raises(ConflictError):
            await s.create_experiment(DRAFT, audit=_entry("create", 4.0))
        seen.append(await s.audit_entries(DRAFT.key, limit=10))
        await s.delete_experiment(await s.get_experiment(DRAFT.key), audit=_entry("delete", 5.0))
        seen.append(await s.audit_entries(DRAFT.key, limit=10))
        seen.append(await s.audit_entries(limit=10))
        return seen

    first, after_conflicts, after_delete, workspace = store(work)
    assert [e.at for e in first] == [2.0, 1.0]  # newest first
    assert after_conflicts == first
    assert [e.action for e in after_delete] == ["delete", "edit", "create"]
    assert workspace == after_delete
    assert first[0].actor.name == "ana" and first[0].actor.key_id == "0123456789abcdef"


def test_the_lists_are_bounded(store: StoreRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_definitions, "EXPERIMENT_AUDIT_MAX_ENTRIES", 3)
    monkeypatch.setattr(store_definitions, "AUDIT_MAX_ENTRIES", 4)

    async def work(s: Store) -> tuple[list[AuditEntry], list[AuditEntry]]:
        current = await s.create_experiment(DRAFT, audit=_entry("create", 0.0))
        for i in range(1, 6):
            new = _patched(current, name=f"name {i}")
            await s.replace_experiment(current, new, audit=_entry("edit", float(i)))
            current = await s.get_experiment(DRAFT.key)
        return await s.audit_entries(DRAFT.key, limit=100), await s.audit_entries(limit=100)

    mine, workspace = store(work)
    assert [e.at for e in mine] == [5.0, 4.0, 3.0]
    assert [e.at for e in workspace] == [5.0, 4.0, 3.0, 2.0]
    assert audit_module.EXPERIMENT_AUDIT_MAX_ENTRIES == 500  # the real bound is untouched
