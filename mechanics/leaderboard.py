"""Leaderboard scores: what each board of a game says of one player's state.

Pure: the persister's leaderboard hook (``gameserver/jobs/leaderboards.py``) calls
:func:`board_scores` on the states it has just flushed, so no player action
pays for leaderboards.
"""

from __future__ import annotations

from economy.config import GameConfig
from economy.leaderboards import Leaderboard
from mechanics.masking import masked_id
from mechanics.state import PlayerState


def metric_score(state: PlayerState, board: Leaderboard) -> int:
    """The player's score on ``board`` (0 for anything they do not have)."""
    kind, ref = board.kind, board.ref
    if kind == "xp":
        return state.pet.xp if state.pet is not None else 0
    if kind == "currency":
        return state.wallet.get(ref, 0)
    if kind == "item":
        return state.inventory.get(ref, 0)
    if kind == "draws":
        return sum(p.total for p in state.boxes.series.values())
    if kind == "checkins":
        return state.checkin.total
    raise ValueError(f"unknown leaderboard metric {board.metric!r}")


def board_scores(state: PlayerState, config: GameConfig) -> dict[str, int]:
    """Board id → the player's score, for every board of ``config``."""
    return {bid: metric_score(state, board) for bid, board in config.leaderboards.items()}


def display_name(state: PlayerState | None, board: Leaderboard, user: str) -> str:
    """How ``board`` names the player to other shoppers (its ``show``): the pet's name
    for ``pet_name`` boards when there is a pet, else the masked id."""
    if board.show == "pet_name" and state is not None and state.pet is not None \
            and state.pet.name:
        return state.pet.name
    return masked_id(user)
