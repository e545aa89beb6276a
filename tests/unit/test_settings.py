"""PETBOX_* parsing: defaults, accepted values, and a clear error naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameserver.db.database import Database
from gameserver.ops.settings import SettingsError, load_settings

SECRET = {"PETBOX_TOKEN_SECRET": "a-secret-of-sixteen+"}


def test_defaults_of_the_performance_settings(tmp_path: Path) -> None:
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path)})
    assert (s.redis_pipelining, s.persister_nice, s.event_loop) == (True, 10, "asyncio")
    assert (s.redis_pipeline_in_flight, s.redis_pipeline_linger) == (2, 0.005)
    assert s.redis_aof_rewrite_percentage == 400
    assert s.latency_target == 0.0  # off: calls wait for company only under load
    assert s.state_cache is None  # unset: on for one process, off for several


def test_the_state_cache_size_is_read(tmp_path: Path) -> None:
    env = {**SECRET, "PETBOX_DATA_DIR": str(tmp_path)}
    assert load_settings({**env, "PETBOX_STATE_CACHE": "0"}).state_cache == 0
    assert load_settings({**env, "PETBOX_STATE_CACHE": "50000"}).state_cache == 50_000
    with pytest.raises(SettingsError, match="PETBOX_STATE_CACHE"):
        load_settings({**env, "PETBOX_STATE_CACHE": "-1"})


def test_performance_settings_are_read(tmp_path: Path) -> None:
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path),
                       "PETBOX_REDIS_PIPELINING": "off", "PETBOX_PERSISTER_NICE": "0",
                       "PETBOX_REDIS_PIPELINE_IN_FLIGHT": "1",
                       "PETBOX_REDIS_PIPELINE_LINGER_US": "250",
                       "PETBOX_LATENCY_TARGET_MS": "12.5"})
    assert (s.redis_pipelining, s.persister_nice) == (False, 0)
    assert s.latency_target == 0.0125
    assert (s.redis_pipeline_in_flight, s.redis_pipeline_linger) == (1, 0.00025)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PETBOX_PERSISTER_NICE", "20", "PETBOX_PERSISTER_NICE must be between 0 and 19, got 20"),
    ("PETBOX_REDIS_PIPELINING", "maybe",
     "PETBOX_REDIS_PIPELINING must be true or false, got 'maybe'"),
    ("PETBOX_EVENT_LOOP", "trio", "PETBOX_EVENT_LOOP must be asyncio or uvloop"),
    ("PETBOX_REDIS_PIPELINE_IN_FLIGHT", "0",
     "PETBOX_REDIS_PIPELINE_IN_FLIGHT must be between 1 and 64, got 0"),
    ("PETBOX_REDIS_PIPELINE_LINGER_US", "x",
     "PETBOX_REDIS_PIPELINE_LINGER_US must be a number, got 'x'"),
    ("PETBOX_LATENCY_TARGET_MS", "-1",
     "PETBOX_LATENCY_TARGET_MS must be between 0 and 10000, got -1"),
    ("PETBOX_SHARDS", "1.5", "PETBOX_SHARDS must be a whole number, got 1.5"),
    ("PETBOX_MAX_BODY", "65536.5", "PETBOX_MAX_BODY must be a whole number, got 65536.5"),
    ("PETBOX_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal",
     "PETBOX_TRUSTED_PROXIES must list IP addresses or networks, got 'lb.internal'"),
])
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str,
                                      message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path), name: value})
    assert str(err.value) == message


def test_sql_timeouts_and_secret_cache(tmp_path: Path) -> None:
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path)})
    assert (s.sql_timeout, s.sql_background_timeout, s.sql_report_timeout) == (1.5, 10.0, 5.0)
    assert (s.secret_cache_seconds, s.secret_cache_max_age) == (300, 3600)
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path), "PETBOX_SQL_TIMEOUT": "0.5",
                       "PETBOX_SQL_BACKGROUND_TIMEOUT": "30", "PETBOX_SQL_REPORT_TIMEOUT": "12",
                       "PETBOX_SECRET_CACHE_SECONDS": "60", "PETBOX_SECRET_CACHE_MAX_AGE": "600"})
    assert (s.sql_timeout, s.sql_background_timeout, s.sql_report_timeout) == (0.5, 30, 12)
    assert (s.secret_cache_seconds, s.secret_cache_max_age) == (60, 600)
    with pytest.raises(SettingsError, match="PETBOX_SECRET_CACHE_MAX_AGE must be between 60"):
        load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path),
                       "PETBOX_SECRET_CACHE_SECONDS": "60", "PETBOX_SECRET_CACHE_MAX_AGE": "5"})


def test_report_bound_lies_between_the_request_and_background_bounds() -> None:
    db = Database("sqlite+aiosqlite://", timeout=1.5, background_timeout=10.0,
                  report_timeout=5.0)
    assert (db.timeout, db.report.timeout, db.background.timeout) == (1.5, 5.0, 10.0)
    assert Database("sqlite+aiosqlite://", timeout=2.0, background_timeout=10.0,
                    report_timeout=0.5).report.timeout == 2.0
    assert Database("sqlite+aiosqlite://", timeout=1.5, background_timeout=10.0,
                    report_timeout=60.0).report.timeout == 10.0


def test_redis_timeout_and_hold_ttl(tmp_path: Path) -> None:
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path)})
    assert (s.redis_timeout, s.hold_ttl) == (2.0, 30.0)
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path), "PETBOX_REDIS_TIMEOUT": "0.3",
                       "PETBOX_HOLD_TTL": "3", "PETBOX_SQL_POOL_TIMEOUT": "1"})
    assert (s.redis_timeout, s.hold_ttl) == (0.3, 3.0)
    with pytest.raises(SettingsError, match=r"PETBOX_HOLD_TTL \(6\) must be more than "
                       r"PETBOX_SQL_TIMEOUT \+ PETBOX_SQL_POOL_TIMEOUT \(6.5\)"):
        load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path), "PETBOX_HOLD_TTL": "6"})


def test_body_caps(tmp_path: Path) -> None:
    env = {**SECRET, "PETBOX_DATA_DIR": str(tmp_path)}
    s = load_settings(env)
    assert (s.client_max_size, s.config_max_size) == (65_536, 2_097_152)
    s = load_settings({**env, "PETBOX_MAX_BODY": "16384", "PETBOX_MAX_CONFIG_BODY": "1048576"})
    assert (s.client_max_size, s.config_max_size) == (16_384, 1_048_576)
    # a shopper cap above the config default raises the config cap's default with it
    s = load_settings({**env, "PETBOX_MAX_BODY": "4194304"})
    assert (s.client_max_size, s.config_max_size) == (4_194_304, 4_194_304)
    with pytest.raises(SettingsError) as err:
        load_settings({**env, "PETBOX_MAX_BODY": "131072", "PETBOX_MAX_CONFIG_BODY": "65536"})
    assert str(err.value) == ("PETBOX_MAX_CONFIG_BODY must be between 131072 and 67108864, "
                              "got 65536")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PETBOX_LOG_LEVEL", "chatty",
     "PETBOX_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("PETBOX_REDIS_URL", "http://127.0.0.1:6379",
     "PETBOX_REDIS_URL must start with redis://, rediss:// or unix://"),
    ("PETBOX_DATABASE_URL", "not a url", "PETBOX_DATABASE_URL is not a database URL"),
    ("PETBOX_DATABASE_URL", "foo://x/y",
     "PETBOX_DATABASE_URL names an unknown database driver 'foo'"),
    ("PETBOX_DATABASE_URL", "postgresql://u@127.0.0.1/db",
     "PETBOX_DATABASE_URL needs an async driver"),
    ("PETBOX_SHADOW_DATABASE_URL", "sqlite:///shadow.db",
     "PETBOX_SHADOW_DATABASE_URL needs an async driver"),
])
def test_bad_urls_and_names_are_refused_at_start(tmp_path: Path, name: str, value: str,
                                                 message: str) -> None:
    """Accepted before, they failed later: a traceback from logging, redis-py or
    SQLAlchemy at the first use instead of a message naming the variable."""
    with pytest.raises(SettingsError) as err:
        load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path), name: value})
    assert str(err.value).startswith(message)


def test_good_urls_and_levels_are_kept(tmp_path: Path) -> None:
    s = load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path),
                       "PETBOX_REDIS_URL": "rediss://h:6380/0", "PETBOX_LOG_LEVEL": "warning",
                       "PETBOX_DATABASE_URL": "postgresql+asyncpg://u:p@h/db",
                       "PETBOX_SHADOW_DATABASE_URL": "sqlite+aiosqlite:///s.db"})
    assert (s.redis_url, s.log_level) == ("rediss://h:6380/0", "WARNING")
    assert s.database_url == "postgresql+asyncpg://u:p@h/db"


def test_a_data_dir_that_cannot_hold_the_token_secret_is_a_settings_error(
        tmp_path: Path) -> None:
    """A file where the directory should be: was a FileExistsError traceback."""
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(SettingsError, match=r"the data directory .* cannot hold the token"):
        load_settings({"PETBOX_DATA_DIR": str(taken / "data")})


def test_merchant_rate_limits_default_on_and_can_be_set_or_turned_off(tmp_path: Path) -> None:
    from gameserver.http.rates import RateLimit

    env = {**SECRET, "PETBOX_DATA_DIR": str(tmp_path)}
    s = load_settings(env)
    assert (s.rate_merchant, s.rate_merchant_auth, s.rate_events) == (
        RateLimit(50, 200), RateLimit(1, 20), RateLimit(500, 10_000))
    s = load_settings({**env, "PETBOX_RATE_MERCHANT": "5,10", "PETBOX_RATE_MERCHANT_AUTH": "off",
                       "PETBOX_RATE_EVENTS": "off"})
    assert (s.rate_merchant, s.rate_merchant_auth, s.rate_events) == (RateLimit(5, 10), None,
                                                                       None)
    with pytest.raises(SettingsError, match="PETBOX_RATE_MERCHANT_AUTH"):
        load_settings({**env, "PETBOX_RATE_MERCHANT_AUTH": "fast"})
