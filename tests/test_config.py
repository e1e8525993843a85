"""Thread settings: applied in one place (simsearch.config) by every CLI command, never over the user's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from simsearch import config
from simsearch.cli.main import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*config.THREAD_DEFAULTS, "SIMSEARCH_THREAD_DEFAULTS"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_fill_only_what_the_user_left_unset(clean_env: pytest.MonkeyPatch) -> None:
    config.thread_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    config.thread_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_defaults_can_be_turned_off(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SIMSEARCH_THREAD_DEFAULTS", "0")
    config.thread_defaults()
    assert "OMP_WAIT_POLICY" not in os.environ


def test_every_cli_command_applies_them(clean_env: pytest.MonkeyPatch, index_dir) -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_they_are_documented_in_the_settings_table() -> None:
    names = {setting.name for setting in config.SETTINGS}
    assert set(config.THREAD_DEFAULTS) | {"SIMSEARCH_THREAD_DEFAULTS"} <= names


def test_a_cli_process_runs_with_them(tmp_path) -> None:
    probe = (  # the group sets them before a command runs, so before it imports torch or FAISS
        "import os, sys\nfrom simsearch.cli.main import main\n"
        "sys.argv = ['simsearch', 'list']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in config.THREAD_DEFAULTS}
    env["SIMSEARCH_INDEX_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "PASSIVE"
