"""
The yardstick for the sync benchmark: the least code that mirrors the list.

One GET, one orjson parse, one ``executemany`` upsert that skips unchanged rows,
in one transaction; a trigger appends every inserted or changed row to a
history table. No retries, no validation, no timestamp parsing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import orjson

FIELDS = (
    "status",
    "hostname",
    "username",
    "script",
    "resource_id",
    "started_at",
    "ended_at",
)
_COLUMNS = ", ".join(("session_id", *FIELDS, "extra"))
_CHANGED = " OR ".join(f"{name} IS NOT excluded.{name}" for name in (*FIELDS, "extra"))
_NEW = ", ".join(f"new.{name}" for name in ("session_id", *FIELDS, "extra"))
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, {", ".join(FIELDS)}, extra);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, {_COLUMNS});
CREATE TRIGGER IF NOT EXISTS added AFTER INSERT ON sessions
  BEGIN INSERT INTO history ({_COLUMNS}) VALUES ({_NEW}); END;
CREATE TRIGGER IF NOT EXISTS changed AFTER UPDATE ON sessions
  BEGIN INSERT INTO history ({_COLUMNS}) VALUES ({_NEW}); END;
"""
_UPSERT = (
    f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * (len(FIELDS) + 2))}) "
    f"ON CONFLICT (session_id) DO UPDATE SET "
    f"{', '.join(f'{name} = excluded.{name}' for name in (*FIELDS, 'extra'))} WHERE {_CHANGED}"
)
_KNOWN = frozenset(("session_id", *FIELDS))


def _row(item: dict[str, object]) -> tuple[object, ...]:
    extra = {key: value for key, value in item.items() if key not in _KNOWN}
    fields = tuple(item.get(name) for name in FIELDS)
    return (item["session_id"], *fields, orjson.dumps(extra) if extra else None)


def sync_baseline(url: str, token: str, db_path: Path) -> None:
    """Mirror the node's list into ``db_path``."""
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{url}/api/v3/sessions/list", headers=headers, timeout=120)
    response.raise_for_status()
    items = orjson.loads(response.content)

    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    db.execute("BEGIN")
    db.executemany(_UPSERT, map(_row, items))
    db.execute("COMMIT")
    db.close()
