"""The report's "History" section: an experiment's audit entries as lines a marketer reads.

Each line says when (UTC), who (the key's name and role), what (the action) and the fields it
changed, before and after; long values (variant and metric lists) are named, not printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import JsonValue

from experiments.audit import AuditEntry

__all__ = ["AccessView", "HistoryRow", "history_rows"]

_SHOWN_CHARACTERS = 60

_ACTIONS = {
    "create": "created",
    "edit": "edited",
    "start": "started",
    "pause": "paused",
    "resume": "resumed",
    "ramp": "ramped coverage",
    "reweight": "re-weighted (bandit)",
    "stop": "stopped",
    "archive": "archived",
    "unarchive": "unarchived",
    "force": "pinned a QA visitor",
    "unforce": "unpinned a QA visitor",
    "delete": "deleted",
    "share_link.create": "made a share link",
    "share_link.revoke": "revoked a share link",
}


@dataclass(frozen=True)
class HistoryRow:
    when: str
    who: str
    action: str
    change: str


@dataclass(frozen=True)
class AccessView:
    """What a signed-in reader sees below the report: the history, and the share form when
    their role may make links (``csrf`` is then the form's token)."""

    history: list[HistoryRow]
    csrf: str | None
    signed_in: bool = False  # a browser session: the page offers to sign out


def _shown(value: JsonValue) -> str:
    if isinstance(value, list | dict):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 1] + "…"


def _change(entry: AuditEntry) -> str:
    if entry.before is None or entry.after is None:
        if entry.action == "share_link.create" and entry.after is not None:
            return f"expires {_when(float(str(entry.after.get('expires_at', 0))))}"
        return ""
    parts = []
    for field in sorted(entry.after.keys() | entry.before.keys()):
        before, after = entry.before.get(field), entry.after.get(field)
        if field in {"started_at", "stopped_at"}:
            continue
        parts.append(f"{field}: {_shown(before)} → {_shown(after)}")
    return "; ".join(parts)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def history_rows(entries: Sequence[AuditEntry]) -> list[HistoryRow]:
    """The rows of the History section, newest first as the entries come."""
    return [
        HistoryRow(
            when=_when(e.at),
            who=f"{e.actor.name} ({e.actor.role})",
            action=_ACTIONS.get(e.action, e.action),
            change=_change(e),
        )
        for e in entries
    ]
