"""The node's storage: one async :class:`Database` over SQLite (embedded default) or
PostgreSQL (production), chosen by a URL, with versioned migrations and small stores.

    db = await open_database("sqlite:///./var/node.db", migrate_now=clock.now())
    async with db.transaction():
        ...
"""

from blindmatch.node.storage.budget import BudgetLedger, BudgetLimits
from blindmatch.node.storage.database import Database, IntegrityError, StorageError
from blindmatch.node.storage.engines import DEFAULT_DB_URL, open_database, parse_database_url
from blindmatch.node.storage.feeds import FeedConflictError, FeedEntry, FeedLog
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.storage.node_state import NodeState
from blindmatch.node.storage.nonces import NonceStore
from blindmatch.node.storage.outbox import Outbox, OutboxMessage, RetryPolicy
from blindmatch.node.storage.replicas import ReplicaEntry, ReplicaStore
from blindmatch.node.storage.validation import StorageValueError

__all__ = [
    "DEFAULT_DB_URL",
    "BudgetLedger",
    "BudgetLimits",
    "Database",
    "FeedConflictError",
    "FeedEntry",
    "FeedLog",
    "IntegrityError",
    "NodeState",
    "NonceStore",
    "Outbox",
    "OutboxMessage",
    "PeerIncidents",
    "ReplicaEntry",
    "ReplicaStore",
    "RetryPolicy",
    "StorageError",
    "StorageValueError",
    "open_database",
    "parse_database_url",
]
