"""Creating merchants and publishing games: shared by the CLI, the demo and tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Any

from sqlalchemy.exc import IntegrityError

from economy.errors import ConfigInvalid, DomainError, Refusal
from gameserver.db.database import Database
from gameserver.games import parse_config
from gameserver.http.auth import hash_api_key, new_api_key, new_signing_secret
from gameserver.state.keys import GAME_RE, MERCHANT_RE


class ProvisionError(DomainError):
    code = "provision_failed"
    kind = Refusal.CONFLICT


@dataclass(frozen=True)
class MerchantCredentials:
    """Shown once at creation: only the API key's hash is stored."""

    merchant: str
    api_key: str
    signing_secret: str

    def to_json(self) -> dict[str, str]:
        return {"merchant": self.merchant, "api_key": self.api_key,
                "signing_secret": self.signing_secret}


async def create_merchant(db: Database, merchant_id: str, now: int, name: str = "",
                          load_test: bool = False) -> MerchantCredentials:
    """A new merchant with a fresh API key and signing secret."""
    if not MERCHANT_RE.fullmatch(merchant_id):
        raise ProvisionError(f"merchant id must match {MERCHANT_RE.pattern}", id=merchant_id)
    creds = MerchantCredentials(merchant_id, new_api_key(), new_signing_secret())
    try:
        await db.create_merchant(merchant_id, name or merchant_id, hash_api_key(creds.api_key),
                                 creds.signing_secret, now, load_test=load_test)
    except IntegrityError as exc:
        raise ProvisionError(f"merchant {merchant_id!r} already exists", id=merchant_id) from exc
    return creds


async def publish_config(db: Database, merchant_id: str, game: str, config: Any, now: int,
                         note: str = "") -> int:
    """Validate ``config`` and publish it as the game's next version; returns the version."""
    if not GAME_RE.fullmatch(game):
        raise ProvisionError(f"game id must match {GAME_RE.pattern}", id=game)
    if await db.merchant(merchant_id) is None:
        raise ProvisionError(f"no merchant {merchant_id!r}", id=merchant_id)
    parse_config(config)  # raises ConfigInvalid with every problem
    return await db.publish_version(merchant_id, game, config, now, note)


def load_config_file(path: Traversable) -> Any:
    """A config file's JSON (a path, or a file in a package: the example games)."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigInvalid([{"path": "$", "message": f"not JSON: {exc}"}]) from exc
