"""What ``petbox demo`` sets up and prints: the demo merchant with the squirrel game
and the Double 11 example (its instants moved to the coming midnight), and the banner
with credentials and ready curl lines."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from gameserver.db.database import Database

EXAMPLES: Traversable = resources.files("gameserver") / "examples"
"""The example games, package data (``gameserver/examples``): a wheel ships them, so
``petbox demo`` runs from an installed petbox as from a checkout."""
DEMO_GAME_FILE = EXAMPLES / "squirrel-omg.json"
DEMO_MERCHANT = "demo"
DEMO_GAME = "squirrel-omg"
DOUBLE11_GAME = "double11"
DOUBLE11_FILE = EXAMPLES / "double11.json"
DOUBLE11_MIDNIGHT = 1_794_326_400
"""2026-11-11 00:00 in Shanghai: the midnight ``gameserver/examples/double11.json`` is
written for."""
TIME_KEYS = ("_at", "_from", "_until")
"""Config fields that are instants (unix s): the demo moves them with the midnight."""


def shifted(config: Any, offset: int) -> Any:
    """``config`` with every instant (an int field named ``*_at``, ``*_from``,
    ``*_until``) moved by ``offset`` seconds: the Double 11 example, replayed on
    another night."""
    if isinstance(config, dict):
        return {k: (v + offset if isinstance(v, int) and not isinstance(v, bool)
                    and k.endswith(TIME_KEYS) else shifted(v, offset))
                for k, v in config.items()}
    if isinstance(config, list):
        return [shifted(v, offset) for v in config]
    return config


def next_midnight(now: int, tz_name: str = "Asia/Shanghai") -> int:
    """The coming local midnight after ``now`` (unix s)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(now, ZoneInfo(tz_name))
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp())


async def demo_setup(db: Database, saved: dict[str, str] | None) -> dict[str, str]:
    """The demo merchant (``saved`` credentials if still valid) with the demo game live."""
    from gameserver.ops.provision import create_merchant, load_config_file, publish_config

    now = int(time.time())
    if saved is not None and await db.merchant(saved["merchant"]) is not None:
        creds = saved
    else:
        merchant_id = DEMO_MERCHANT
        if await db.merchant(merchant_id) is not None:  # credentials file lost: new id
            merchant_id = f"{DEMO_MERCHANT}-{now}"
        creds = (await create_merchant(db, merchant_id, now, "Demo shop")).to_json()
    # Double 11 tonight: the example's plays (flash sale, envelope rain, group buys ...)
    # moved so that its midnight is the coming one.
    double11 = shifted(load_config_file(DOUBLE11_FILE), next_midnight(now) - DOUBLE11_MIDNIGHT)
    for game, config in ((DEMO_GAME, load_config_file(DEMO_GAME_FILE)),
                         (DOUBLE11_GAME, double11)):
        live = await db.live_version(creds["merchant"], game)
        current = await db.game_version(creds["merchant"], game, live) if live else None
        if current is None or current.config != config:  # (double11: once a night)
            await publish_config(db, creds["merchant"], game, config, now, "demo")
    return dict(creds)


def petbox_command() -> str:
    """How a shell reaches this petbox: ``petbox`` when it is on PATH, else this
    interpreter running the CLI module (``python3 dev.py demo`` leaves the venv off PATH)."""
    if shutil.which("petbox"):
        return "petbox"
    return f"{shlex.quote(sys.executable)} -m gameserver.cli"


def demo_banner(creds: dict[str, str], host: str, port: int, data_dir: Path) -> str:
    """Credentials and curl lines that keep working: the token comes from ``petbox
    session`` run when the lines are (not a login signed now, which expires in 10 min)."""
    user = "shopper-1"
    base = f"http://{host}:{port}"
    game_url = f"{base}/v1/games/{DEMO_GAME}"
    session_cmd = (f"{petbox_command()} --data-dir {shlex.quote(str(data_dir.resolve()))} "
                   f"session {creds['merchant']} {user} --token-only")
    return f"""
petbox demo
  merchant        {creds['merchant']}
  api key         {creds['api_key']}
  signing secret  {creds['signing_secret']}
  game            {DEMO_GAME}  (gameserver/examples/squirrel-omg.json)
  game            {DOUBLE11_GAME}  (gameserver/examples/double11.json: every play, \
its midnight tonight)
  data directory  {data_dir.resolve()}

Try it (the session command signs a fresh login each time; the token lasts hours):
  TOKEN=$({session_cmd})
  curl -s -X POST {game_url}/pet -H "Authorization: Bearer $TOKEN" \\
    -H 'Idempotency-Key: adopt-1' -d '{{"species": "squirrel", "name": "Nutty"}}'
  curl -s -X POST {game_url}/pet/feed -H "Authorization: Bearer $TOKEN" \\
    -H 'Idempotency-Key: feed-1' -d '{{"food": "acorn_snack"}}'
  curl -s -X POST {game_url}/boxes/forest_friends/draw -H "Authorization: Bearer $TOKEN" \\
    -H 'Idempotency-Key: ten-1' -d '{{"count": 10}}'
  curl -s {game_url}/me -H "Authorization: Bearer $TOKEN"
  curl -s {game_url}/coupons -H "Authorization: Bearer $TOKEN"

Double 11 (its flash sale, envelope rain and group buys open at the coming midnight):
  curl -s '{base}/v1/games/{DOUBLE11_GAME}/flashsales/midnight-nuts?merchant={creds['merchant']}'
  curl -s '{base}/v1/games/{DOUBLE11_GAME}/polls/d11_flavour?merchant={creds['merchant']}'
  console: {base}/console  (API key above; Plays tab)
"""
