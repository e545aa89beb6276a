"""``petbox merchant``, ``petbox session`` and ``petbox game``: merchants, shopper
logins and game configs on the command line (``gameserver/cli/admin.py`` adds the
merchant tools to ``game``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TypeVar

import click

from economy.config import game_config_json_schema
from gameserver.cli.common import cli_settings as _settings
from gameserver.cli.common import run as _run
from gameserver.cli.common import with_db as _with_db
from gameserver.http.auth import session_signature

T = TypeVar("T")


@click.group()
def merchant() -> None:
    """Manage merchants."""


@merchant.command("create")
@click.argument("merchant_id", metavar="MERCHANT")
@click.option("--name", default="", help="display name")
@click.option("--load-test", is_flag=True,
              help="a merchant for load testing only (shadow data): its shoppers are "
                   "exempt from the rate limits, so never give it real shoppers")
@click.option("--json", "as_json", is_flag=True,
              help="print {merchant, api_key, signing_secret} as JSON")
def merchant_create(merchant_id: str, name: str, load_test: bool, as_json: bool) -> None:
    """Create MERCHANT and print its API key and signing secret (shown only once)."""
    from gameserver.ops.provision import create_merchant

    settings = _settings()
    creds = _run(lambda: _with_db(settings, lambda db: create_merchant(
        db, merchant_id, int(time.time()), name, load_test)))
    if load_test:
        click.echo(f"note: {merchant_id} is for load tests only: every session of it, real "
                   "or shadow, is exempt from the rate limits (docs/loadtesting.md)",
                   err=True)
    if as_json:
        click.echo(json.dumps(creds.to_json()))
    else:
        click.echo(f"merchant:       {creds.merchant}\napi key:        {creds.api_key}\n"
                   f"signing secret: {creds.signing_secret}\n(store them now: shown once; the "
                   f"secret's text as is is the HMAC key, do not hex-decode it)")


@click.command("session")
@click.argument("merchant_id", metavar="MERCHANT")
@click.argument("user", metavar="USER")
@click.option("--json", "as_json", is_flag=True,
              help="print {login, token, expires_at} as JSON")
@click.option("--token-only", is_flag=True, help="print only the token: TOKEN=$(petbox ...)")
def session(merchant_id: str, user: str, as_json: bool, token_only: bool) -> None:
    """Print a signed login (createSession body) and a player token for USER of MERCHANT.

    The login's sign is hex HMAC-SHA256 keyed with the signing secret's text as is (not
    hex-decoded) over "MERCHANT\\nUSER\\nTS"; createSession accepts it for 10 minutes.
    The token is minted here with the token secret of this data directory (or
    PETBOX_TOKEN_SECRET), so a server sharing it accepts it for PETBOX_TOKEN_TTL: run
    this again for a fresh one."""
    from gameserver.http.auth import TokenSigner
    from gameserver.state.keys import USER_RE

    if not USER_RE.fullmatch(user):
        raise click.BadParameter("1-128 characters of [A-Za-z0-9_.:@-]", param_hint="USER")
    settings = _settings()
    found = _run(lambda: _with_db(settings, lambda db: db.merchant(merchant_id)))
    if found is None:
        raise click.ClickException(f"no merchant {merchant_id!r} in this database")
    now = int(time.time())
    login = {"merchant": merchant_id, "user": user, "ts": now,
             "sign": session_signature(found.signing_secret, merchant_id, user, now)}
    token, expires_at = TokenSigner(settings.token_secret, settings.token_ttl).mint(
        merchant_id, user, now)
    if token_only:
        click.echo(token)
    elif as_json:
        click.echo(json.dumps({"login": login, "token": token, "expires_at": expires_at}))
    else:
        click.echo(f"login (POST /v1/sessions, valid 10 minutes):\n  {json.dumps(login)}\n"
                   f"token (valid until {expires_at}, on a server with this token secret):"
                   f"\n  {token}")


@click.group()
def game() -> None:
    """Manage game configs."""


@game.command("publish")
@click.argument("merchant_id", metavar="MERCHANT")
@click.argument("game_id", metavar="GAME")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="why this version (shown in the version list)")
def game_publish(merchant_id: str, game_id: str, file: Path, note: str) -> None:
    """Validate FILE and publish it as GAME's next version."""
    from gameserver.ops.provision import load_config_file, publish_config

    settings = _settings()
    config = _run(lambda: _async_value(load_config_file(file)))
    version = _run(lambda: _with_db(settings, lambda db: publish_config(
        db, merchant_id, game_id, config, int(time.time()), note)))
    click.echo(f"published {merchant_id}/{game_id} version {version}")


async def _async_value(value: T) -> T:
    return value


@game.command("schema")
def game_schema() -> None:
    """Print the JSON Schema of a game config."""
    click.echo(json.dumps(game_config_json_schema(), indent=2, ensure_ascii=False))


@game.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def game_validate(file: Path) -> None:
    """Check FILE and list every problem with its JSON path."""
    from gameserver.games import parse_config
    from gameserver.ops.provision import load_config_file

    _run(lambda: _async_value(parse_config(load_config_file(file))))
    click.echo(f"{file}: valid")
