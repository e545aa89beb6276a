"""The store (HTTP spine), persister, value-tier and stock-bucket suites once more, on
the 3-master cluster: the same test functions, collected here, get the cluster as their
Redis (``tests/cluster/conftest.py``: ``redis_url``, ``redis`` and 16 shards) and
SQLite as their SQL (PostgreSQL runs them on one Redis node; doubling both would cost
CI more than it tells)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.test_http_spine import *  # noqa: F403
from tests.integration.test_persister import *  # noqa: F403
from tests.integration.test_stock_buckets import *  # noqa: F403
from tests.integration.test_value_tier import *  # noqa: F403


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database (no PostgreSQL variant here)."""
    path = tmp_path / "petbox.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


# Instruments of one node, not behaviour: MONITOR of a single server, and round trips
# counted on one connection. The cluster's routing has its own tests (test_routing.py).
del test_an_action_is_one_read_only_load_and_one_commit  # noqa: F821
del test_an_action_on_a_player_this_process_committed_is_one_commit  # noqa: F821
del test_a_pass_writes_every_shard_in_one_transaction_per_table  # noqa: F821
