"""The persister: writes Redis play state and ledgers behind to SQL (DESIGN.md, "Persister").

A pass covers all of its shards at once, one module per stage:

1. **epoch** (:mod:`.epochs`) — every shard's epoch key must be in Redis; a shard
   whose key is gone while SQL knows one lost its data and is recovered.
2. **scan** (:mod:`.passes`) — one pipeline (one Redis round trip) reads, for every
   shard: its ledger stream through the consumer group, its oldest dirty players and
   its players idle past ``idle_evict_after``. Every command touches one shard's keys
   (one hash slot).
3. **ledger** (:mod:`.ledger`) — the entries go to SQL, idempotent by
   ``(commit_id, seq)``; only after the SQL commit are they acknowledged and deleted.
   An entry that cannot be decoded (a newer release's, while a deployment rolls) is
   parked in the shard's parked stream by the same round trip; every pass tries the
   parked entries again (:mod:`.parked`) and writes those that decode now.
4. **flush** (:mod:`.flush`) — the dirty players of each shard whose ledger stage
   succeeded are upserted where SQL holds an older version, then marked flushed.
5. **evict** (:mod:`.evict`) — idle players whose SQL copy is current leave Redis.
6. **aggregates** (:mod:`.aggregates`) — shared state (poll buckets, groups, pools):
   ledger rows and states of each aggregate shard in one transaction, then eviction.

Stream entries and player states are decoded by :mod:`.wire`; the SQL transactions
over several shards are built by :mod:`.transactions`; round trips and failure
reports go through :class:`.context.PassContext`; :class:`.passes.Persister` composes
the stages, and :func:`.wiring.wired_persister` adds the hooks every petbox persister
runs after a flush.

A failing stage (SQL down, Redis down) is logged and counted once in
``petbox_persister_errors_total{stage}``; :attr:`PassReport.errors` names every
shard whose work it left in Redis, and the next pass retries it. When a transaction
holding several shards fails while SQL still answers, its shards are written again
one transaction each, so a row SQL rejects holds up only its own shard. Several
persisters may run at once (one per server process): consumer groups split the
ledger, rows go to SQL sorted (one lock order), and the version guard and the Lua
checks make concurrent flushes and evictions safe.
"""

from gameserver.persister.epochs import DataLossCallback
from gameserver.persister.flush import FlushedCallback
from gameserver.persister.passes import Persister
from gameserver.persister.report import Backlog, PassReport
from gameserver.persister.standalone import run_standalone
from gameserver.persister.wire import (
    Command,
    Entry,
    entry_rows,
    ledger_rows,
    split_member,
    state_times,
)
from gameserver.persister.wiring import wired_persister

STAGES = ("epoch", "ledger", "parked", "flush", "evict", "aggregates", "gauges")

__all__ = ["STAGES", "Backlog", "Command", "DataLossCallback", "Entry", "FlushedCallback",
           "PassReport", "Persister", "entry_rows", "ledger_rows", "run_standalone",
           "split_member", "state_times", "wired_persister"]
