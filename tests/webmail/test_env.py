"""Settings read from the environment refuse bad values at start-up, with a sentence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webmail.env import env_float

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "message"), [
    ("fast", "must be a number"), ("nan", "must be a number"), ("inf", "must be at most 0.5"),
    ("5", "must be at most 0.5"), ("-0.1", "must be at least 0.0"),
])
def test_env_float_refuses_values_out_of_bounds(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("SOME_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_float("SOME_SECONDS", 0.005, minimum=0.0, maximum=0.5)


def test_env_float_reads_a_value_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECONDS", "0.02")
    assert env_float("SOME_SECONDS", 0.005, minimum=0.0, maximum=0.5) == 0.02
    monkeypatch.setenv("SOME_SECONDS", " ")
    assert env_float("SOME_SECONDS", 0.005, minimum=0.0, maximum=0.5) == 0.005


def test_a_gather_window_in_milliseconds_by_mistake_stops_the_start(tmp_path: Path) -> None:
    # 5 meant as milliseconds would hold every live update for 5 s: the process refuses to start.
    env = dict(os.environ, EVENTS_GATHER_SECONDS="5")
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "EVENTS_GATHER_SECONDS must be at most 0.5, not 5.0" in result.stderr
