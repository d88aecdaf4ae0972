"""The persistent store: tests, their logs (in chunks: chunks.py), claims with a global cap, leases, fencing.

Behind one facade, `Store` (facade.py): the SQLModel tables (tables.py), the plain records
callers get (records.py), connections and transactions (driver.py), the hot path's SQL
(sql.py), the queue (queue.py), logs (logs.py), history (history.py), the transition gate
(gate.py) and schema upgrades (migrate.py).
"""

from agenttui.engine.store.checks import StoreUnusable
from agenttui.engine.store.driver import PATIENT, StoreFull
from agenttui.engine.store.facade import Store
from agenttui.engine.store.logs import count_into_cap, line_bytes
from agenttui.engine.store.migrate import BASELINE_REVISION, MIGRATIONS_DIR
from agenttui.engine.store.records import Fence, Owner, QueueStatus
from agenttui.engine.store.tables import (
    CLAIMS,
    LOGS,
    PACKAGES,
    SECRETS,
    TESTS,
    ClaimRecord,
    LogChunkRecord,
    PackageRecord,
    StoreMeta,
    TestRecord,
    TestSecretRecord,
)

__all__ = [
    "BASELINE_REVISION",
    "CLAIMS",
    "LOGS",
    "MIGRATIONS_DIR",
    "PACKAGES",
    "PATIENT",
    "SECRETS",
    "TESTS",
    "ClaimRecord",
    "Fence",
    "LogChunkRecord",
    "Owner",
    "PackageRecord",
    "QueueStatus",
    "Store",
    "StoreFull",
    "StoreMeta",
    "StoreUnusable",
    "TestRecord",
    "TestSecretRecord",
    "count_into_cap",
    "line_bytes",
]
