"""``PETBOX_REDIS_CLUSTER`` and ``PETBOX_SHARDS`` as read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameserver.ops.settings import SettingsError, load_settings
from gameserver.state.keys import DEFAULT_SHARDS

SECRET = {"PETBOX_TOKEN_SECRET": "x" * 32}


@pytest.mark.parametrize(("raw", "mode"), [(None, "auto"), ("", "auto"), ("auto", "auto"),
                                           ("AUTO", "auto"), ("1", "on"), ("yes", "on"),
                                           ("0", "off"), ("false", "off")])
def test_cluster_mode(tmp_path: Path, raw: str | None, mode: str) -> None:
    env = {**SECRET, "PETBOX_DATA_DIR": str(tmp_path)}
    if raw is not None:
        env["PETBOX_REDIS_CLUSTER"] = raw
    assert load_settings(env).redis_cluster == mode


def test_a_bad_cluster_mode_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PETBOX_REDIS_CLUSTER must be auto, 1 or 0, "
                                            "got 'cluster'"):
        load_settings({**SECRET, "PETBOX_DATA_DIR": str(tmp_path),
                       "PETBOX_REDIS_CLUSTER": "cluster"})


def test_shards_default_and_whether_they_were_asked_for(tmp_path: Path) -> None:
    base = {**SECRET, "PETBOX_DATA_DIR": str(tmp_path)}
    default = load_settings(base)
    assert (default.shards, default.shards_explicit) == (DEFAULT_SHARDS, False) == (16, False)
    asked = load_settings({**base, "PETBOX_SHARDS": "1024"})
    assert (asked.shards, asked.shards_explicit) == (1024, True)
