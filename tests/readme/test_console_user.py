"""The console's user is named as README's settings table says: `CHATOPS_CONSOLE_USER`, set
in the environment or in `.env` like every other setting, and `--as` before both."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.readme.transcripts import shell_env

# the history names who froze the endpoint
ASK = 'chatops console -c "/lock iris for a test" -c "/history"'


def _console(clone: Path, *, extra: str = "", **variables: str) -> str:
    """Who the history says froze the endpoint, on a state directory of its own."""
    home = clone / f"run{len(list(clone.glob('run*')))}"
    home.mkdir()
    (home / ".env").write_text((clone / ".env").read_text())
    env = shell_env(home) | variables
    done = subprocess.run(
        ["bash", "-c", f"{ASK} {extra}"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = [line for line in done.stdout.splitlines() if "/lock iris" in line]
    assert len(rows) == 1, done.stdout + done.stderr
    return rows[0].split("│")[2].strip()


def test_the_console_user_from_dotenv_names_who_acts(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHATOPS_CONSOLE_USER=dana\n")
    assert _console(tmp_path) == "dana"


def test_the_environment_and_as_come_before_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHATOPS_CONSOLE_USER=dana\n")
    assert _console(tmp_path, CHATOPS_CONSOLE_USER="erin") == "erin"
    assert _console(tmp_path, extra="--as frank") == "frank"
