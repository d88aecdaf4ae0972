"""The statements of the store's hot path, as the driver's own SQL.

Every write a test makes in its life (submit, claim, heartbeat, adoption, fenced updates,
transitions, cancel, log appends, archiving) and the claim's ordering run these statements
(see driver.execute). They are written once, here, with `?` for parameters and `{for_update}`
where PostgreSQL takes a row lock; driver.render turns each into the connection's paramstyle
once. Columns are named from the SQLModel tables, so a renamed column fails at import.
"""

from __future__ import annotations

import functools

from agenttui.core.lifecycle import ACTIVE, TERMINAL, Status
from agenttui.engine.store.tables import CLAIMS, LOGS, META, PACKAGES, SECRETS, TESTS


def _literals(statuses: frozenset[Status]) -> str:
    """Status values as SQL literals (constants of the code, never caller input)."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses, key=lambda s: s.value))


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


ACTIVE_IN = f"({_literals(ACTIVE)})"
TERMINAL_IN = f"({_literals(TERMINAL)})"
QUEUED = f"'{Status.QUEUED.value}'"
TEST_COLUMNS = tuple(c.name for c in TESTS.c)
_ALL_TEST_COLUMNS = ", ".join(TEST_COLUMNS)
LOG_COLUMNS = ("test_id", "first_seq", "last_seq", "attempt", "data")

# ---------------------------------------------------------------- the store's identity
STORE_ID = f"SELECT value FROM {META.name} WHERE key = 'store_id'"
INSERT_STORE_ID = f"INSERT INTO {META.name} (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING"

# ---------------------------------------------------------------- test ids (SQLite: AUTOINCREMENT)
HIGHEST_TEST_ID = (
    f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{TESTS.name}'), 0), "
    f"coalesce((SELECT max(id) FROM {TESTS.name}), 0))"
)
SET_TEST_ID_FLOOR = f"UPDATE sqlite_sequence SET seq = ? WHERE name = '{TESTS.name}'"
INSERT_TEST_ID_FLOOR = f"INSERT INTO sqlite_sequence (name, seq) VALUES ('{TESTS.name}', ?)"

# ---------------------------------------------------------------- logs
INSERT_LOG_CHUNK = f"INSERT INTO {LOGS.name} ({', '.join(LOG_COLUMNS)}) VALUES ({placeholders(len(LOG_COLUMNS))})"
# The chunks holding lines after a position, in order: parameters test_id, the position.
LOG_CHUNKS_AFTER = f"SELECT first_seq, last_seq, data FROM {LOGS.name} WHERE test_id = ? AND last_seq > ? ORDER BY last_seq"
DELETE_LOGS = f"DELETE FROM {LOGS.name} WHERE test_id = ?"
DELETE_SECRETS = f"DELETE FROM {SECRETS.name} WHERE test_id = ?"
INSERT_SECRETS = f"INSERT INTO {SECRETS.name} (test_id, sealed) VALUES (?, ?)"

# ---------------------------------------------------------------- one test, locked
LOCK_TEST = (
    f"SELECT status, log_seq, log_bytes, log_truncated, lease_owner, attempt FROM {TESTS.name} "
    "WHERE id = ?{for_update}"
)
LOCK_WHOLE_TEST = f"SELECT {_ALL_TEST_COLUMNS} FROM {TESTS.name} WHERE id = ?{{for_update}}"

# ---------------------------------------------------------------- the claim
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(?)"  # PostgreSQL: held until the transaction ends
# Per user with waiting tests: everyone's active count, the user's running count and when
# the user was last served (the inputs of queue.next_in_line's fair order).
WAITING_OWNERS = f"""
SELECT waiting.owner_uid,
  (SELECT count(*) FROM {TESTS.name} WHERE status IN {ACTIVE_IN}) AS active,
  (SELECT count(*) FROM {TESTS.name} AS other
    WHERE other.owner_uid = waiting.owner_uid AND other.status IN {ACTIVE_IN}) AS running,
  (SELECT coalesce(max(other.claimed_at), 0) FROM {TESTS.name} AS other
    WHERE other.owner_uid = waiting.owner_uid) AS last_served
FROM (SELECT DISTINCT owner_uid FROM {TESTS.name} WHERE status = {QUEUED}) AS waiting"""
INSERT_CLAIM = (
    f"INSERT INTO {CLAIMS.name} (test_id, owner, attempt, active_after, cap, ts) VALUES ({placeholders(6)})"
)
# One claimed test: its new attempt, lease, nonce and the first line of its log (a system
# line, stored whatever the cap: its size is added, the truncation flag is left as it is).
CLAIM_TEST = f"""
UPDATE {TESTS.name} SET status = ?, attempt = attempt + 1, lease_owner = ?, lease_expires_at = ?,
  claimed_at = ?, handle = NULL, log_cursor = NULL, result_json = NULL, result_nonce = ?,
  next_attempt_at = NULL, log_seq = log_seq + 1, log_bytes = log_bytes + ?, updated_at = ?
WHERE id = ? AND status = {QUEUED} RETURNING {_ALL_TEST_COLUMNS}"""


@functools.lru_cache(maxsize=64)
def owner_line(*, ready_only: bool, only_ids: int | None, limited: bool) -> str:
    """One user's QUEUED tests in their own order: parameters owner_uid, then `now` when
    `ready_only`, then `only_ids` ids, then the limit."""
    where = [f"owner_uid = ? AND status = {QUEUED}"]
    if ready_only:  # not in an infrastructure retry's backoff
        where.append("(next_attempt_at IS NULL OR next_attempt_at <= ?)")
    if only_ids is not None:
        where.append(f"id IN ({placeholders(only_ids)})" if only_ids else "1 = 0")
    return (
        f"SELECT id, priority, queued_at, attempt FROM {TESTS.name} WHERE {' AND '.join(where)} "
        "ORDER BY priority, queued_at, id" + (" LIMIT ?" if limited else "")
    )


# A QUEUED test's place (queue.position), counted in one user's line on the (owner_uid, status,
# priority, queued_at, id) index without reading the tests themselves.
QUEUED_TEST = f"SELECT owner_uid, priority, queued_at, id FROM {TESTS.name} WHERE id = ? AND status = {QUEUED}"
_LINE = f"FROM {TESTS.name} WHERE owner_uid = ? AND status = {QUEUED}"
# How many of a user's tests are of a higher priority and of the same one: parameters priority,
# priority, owner_uid, priority. Then those of a priority before one test (priority, queued_at,
# id) and the n-th of a priority (its offset).
LINE_COUNTS = (
    f"SELECT count(CASE WHEN priority < ? THEN 1 END) AS higher, count(CASE WHEN priority = ? THEN 1 END) AS same "
    f"{_LINE} AND priority <= ?"
)
LINE_BEFORE = f"SELECT count(*) {_LINE} AND priority = ? AND (queued_at, id) < (?, ?)"
LINE_NTH = f"SELECT queued_at, id {_LINE} AND priority = ? ORDER BY queued_at, id LIMIT 1 OFFSET ?"

# ---------------------------------------------------------------- leases
@functools.lru_cache(maxsize=64)
def heartbeat(count: int) -> str:
    return (
        f"UPDATE {TESTS.name} SET lease_expires_at = ? WHERE id IN ({placeholders(count)}) "
        f"AND lease_owner = ? AND status IN {ACTIVE_IN} RETURNING id"
    )


@functools.lru_cache(maxsize=2)
def take_over(*, had_owner: bool) -> str:
    """Adopt a test whose lease expired, if still as the adopter saw it: parameters new owner,
    expiry, now, id, attempt, [old owner,] now."""
    owner = "lease_owner = ?" if had_owner else "lease_owner IS NULL"
    return (
        f"UPDATE {TESTS.name} SET lease_owner = ?, lease_expires_at = ?, updated_at = ? "
        f"WHERE id = ? AND status IN {ACTIVE_IN} AND attempt = ? AND {owner} "
        f"AND (lease_expires_at IS NULL OR lease_expires_at < ?) RETURNING {_ALL_TEST_COLUMNS}"
    )


# ---------------------------------------------------------------- tests
# Which rows an update_tests statement changes (their parameters follow the columns').
BY_ID = "id = ?"
BY_ID_IF_STATUS = "id = ? AND status = ?"  # the status the gate checked the change against
BY_ID_IF_FENCED = "id = ? AND lease_owner = ? AND attempt = ?"


@functools.lru_cache(maxsize=256)
def update_tests(columns: tuple[str, ...], where: str, returning: bool = False) -> str:
    """UPDATE of `columns` (parameters in their order, then those of `where`)."""
    _check_columns(columns)
    assignments = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {TESTS.name} SET {assignments} WHERE {where}" + (
        f" RETURNING {_ALL_TEST_COLUMNS}" if returning else ""
    )


# The tables' Python-side defaults, which Core would add to an INSERT: every column an insert
# leaves out gets its default.
TEST_DEFAULTS = {c.name: c.default.arg for c in TESTS.c if c.default is not None and c.default.is_scalar}


@functools.lru_cache(maxsize=16)
def insert_test(columns: tuple[str, ...]) -> str:
    _check_columns(columns)
    return (
        f"INSERT INTO {TESTS.name} ({', '.join(columns)}) VALUES ({placeholders(len(columns))}) "
        f"RETURNING {_ALL_TEST_COLUMNS}"
    )


def _check_columns(columns: tuple[str, ...]) -> None:
    unknown = [c for c in columns if c not in TESTS.c]
    if unknown:
        raise KeyError(f"not columns of {TESTS.name}: {unknown}")


# ---------------------------------------------------------------- history
@functools.lru_cache(maxsize=2)
def finished_before(*, of_one_owner: bool) -> str:
    """Finished tests older than a cutoff: parameters cutoff[, owner_uid]."""
    return (
        f"SELECT id, status FROM {TESTS.name} WHERE status IN {TERMINAL_IN} AND finished_at < ?"
        + (" AND owner_uid = ?" if of_one_owner else "")
    )


# ---------------------------------------------------------------- packages
_PACKAGE_COLUMNS = ("test_id", "owner_uid", "path", "size", "created_at", "s3_key", "url_expires_at")
INSERT_PACKAGE = (
    f"INSERT INTO {PACKAGES.name} ({', '.join(_PACKAGE_COLUMNS)}) VALUES ({placeholders(len(_PACKAGE_COLUMNS))}) "
    f"RETURNING {', '.join(c.name for c in PACKAGES.c)}"
)
