"""What a persister pass reports: its counts, its failures, and the backlog left."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PassReport:
    """What one pass did, summed over shards."""

    ledger_entries: int = 0
    """Stream entries written to SQL and acknowledged."""
    ledger_rows: int = 0
    """Ledger rows in those entries (sent to SQL; duplicates are skipped there)."""
    ledger_parked: int = 0
    """Undecodable stream entries moved to their shard's parked stream."""
    parked_written: int = 0
    """Parked entries written to SQL and deleted from the parked stream."""
    players_flushed: int = 0
    """Player states sent to SQL."""
    players_clean: int = 0
    """Players whose dirty mark was cleared (unchanged since they were read)."""
    evicted: int = 0
    lost_shards: list[int] = field(default_factory=list)
    """Shards found to have lost their Redis data in this pass."""
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    """``(stage, shard, error)``: one per shard whose stage failed in this pass (its
    work stays in Redis); shard -1 for what is not per shard (the gauges, the read of
    every epoch key)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, other: PassReport) -> None:
        self.ledger_entries += other.ledger_entries
        self.ledger_rows += other.ledger_rows
        self.ledger_parked += other.ledger_parked
        self.parked_written += other.parked_written
        self.players_flushed += other.players_flushed
        self.players_clean += other.players_clean
        self.evicted += other.evicted
        self.lost_shards += other.lost_shards
        self.errors += other.errors


@dataclass(frozen=True)
class Backlog:
    """Work waiting in Redis, over all shards."""

    dirty: int
    ledger: int
    lag_seconds: float
    """Age of the oldest dirty mark (0 when nothing is dirty)."""
    parked: int = 0
    """Parked ledger entries (not part of :attr:`empty`: a release that cannot decode
    them waits for one that can)."""

    @property
    def empty(self) -> bool:
        return self.dirty == 0 and self.ledger == 0
