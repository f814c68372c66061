"""The scrubber: what it removes, what it keeps readable, and that it is stable."""

from __future__ import annotations

import logging
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.scrub
from core.config import Environment, Settings
from core.errors import ChatOpsError, RegistryError
from core.scrub import (
    MIN_SECRET,
    Scrubber,
    ScrubFilter,
    register_root,
    register_secret,
    register_settings,
    registered_secrets,
    scrub,
    scrub_value,
)

TMP = Path(tempfile.gettempdir()).resolve()
SECRET = "Kq8-registered-9Zx"


@pytest.fixture(autouse=True)
def fresh_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide scrubber as a bot starts it, with only this file's secret: what other
    tests registered (a database password like `chatops`) must not change these texts."""
    monkeypatch.setattr(core.scrub, "_default", Scrubber())
    core.scrub._default_roots()
    register_secret(SECRET)


CASES = [
    # URL userinfo
    (
        "API request to http://user:s3cr3t@host:5000/api/2.0/x failed",
        "API request to http://***@host:5000/api/2.0/x failed",
    ),
    ("https://token@github.com/org/repo", "https://***@github.com/org/repo"),
    ("postgresql+psycopg://chatops:pw@db/chatops", "postgresql+psycopg://***@db/chatops"),
    ("http://us:p@ss@host/", "http://***@host/"),
    # token-like query values, whatever the case, also as Slack escapes `&`
    (
        "https://b.s3/x?X-Amz-Signature=abc123&ok=1&token=zz#top",
        "https://b.s3/x?X-Amz-Signature=***&ok=1&token=***#top",
    ),
    ("<https://h/p?a=1&amp;access_key=AKIA1|link>", "<https://h/p?a=1&amp;access_key=***|link>"),
    ("?api_key=k1&password=p2&client_secret=s3", "?api_key=***&password=***&client_secret=***"),
    ("connect with password=hunter22 now", "connect with password=*** now"),
    # Slack tokens of every kind
    ("bot xoxb-1111-2222-abcDEF", "bot ***"),
    # the bot's own API tokens, by their prefix and length, whichever process sees them
    ("token chatops_" + "aZ9_-" * 10 + " used", "token *** used"),
    (
        "metric chatops_slack_api_requests_total stays",
        "metric chatops_slack_api_requests_total stays",
    ),
    ("user xoxp-1-2-3-abc, app xapp-1-A01-99-ff", "user ***, app ***"),
    ("refresh xoxe-1-My0xYZ", "refresh ***"),
    # bearer and basic credentials; prose that only looks like them stays
    ("Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
    ("Basic authentication is off", "Basic authentication is off"),
    # secrets the process registered, wherever they appear
    (f"the key {SECRET} was refused", "the key *** was refused"),
    # server paths under the temporary directory: their last component only
    (
        f"No such file or directory: '{TMP}/pytest-7/artifacts/1/abc/model'",
        "No such file or directory: '…/model'",
    ),
    (f"sqlite:///{TMP}/state/mlflow.db", "sqlite:///…/mlflow.db"),
    (f"file://{TMP}/a/b/MLmodel.", "file://…/MLmodel."),
    (f"({TMP}/x/y)", "(…/y)"),
    # what must stay as it is
    ("/deploy iris v1 to prod", "/deploy iris v1 to prod"),
    ("fatal: cannot open /dev/accel0", "fatal: cannot open /dev/accel0"),
    ("http://127.0.0.1:5000/api/2.0/mlflow", "http://127.0.0.1:5000/api/2.0/mlflow"),
    ("iris v2 is live at http://127.0.0.1:18004", "iris v2 is live at http://127.0.0.1:18004"),
    ("monkey business, a token of thanks", "monkey business, a token of thanks"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_paths_under_a_registered_root_are_shortened(tmp_path: Path) -> None:
    root = Path("/srv/chatops-state-for-test")
    assert scrub(f"{root}/artifacts/iris/2") == f"{root}/artifacts/iris/2"
    register_root(root)
    assert scrub(f"at {root}/artifacts/iris/2 today") == "at …/2 today"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert "abc" not in registered_secrets()
    assert scrub("abc") == "abc"


def test_settings_register_the_tracking_password_and_cml_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATOPS_TEST_SCRUB_KEY", "cmlkey-for-the-scrub-test-1")
    settings = Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri="http://bob:pa%24%24word-77@registry:5000",
        environments=[
            Environment(
                name="dev",
                target="cml",
                url="https://ml.example.com",
                project_id="p",
                api_key_env="CHATOPS_TEST_SCRUB_KEY",
            )
        ],
    )
    register_settings(settings)
    said = "pa$$word-77, pa%24%24word-77, cmlkey-for-the-scrub-test-1"
    assert scrub(said) == "***, ***, ***"


def test_errors_are_scrubbed_when_made() -> None:
    exc = RegistryError(
        "MLflow at http://u:p4ss@h/ failed", log_tail=f"open {TMP}/q/model.pkl: denied"
    )
    assert (exc.message, str(exc), exc.log_tail) == (
        "MLflow at http://***@h/ failed",
        "MLflow at http://***@h/ failed",
        "open …/model.pkl: denied",
    )
    assert isinstance(exc, ChatOpsError)


def test_nested_values_are_scrubbed() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"no {SECRET}"}}]
    assert scrub_value(blocks)[0]["text"] == {"type": "mrkdwn", "text": "no ***"}
    assert scrub_value((1, None, "xoxb-9-9-a")) == (1, None, "***")


def test_the_log_filter_scrubs_arguments_and_tracebacks() -> None:
    try:
        raise ValueError(f"boom at http://u:{SECRET}@h/")
    except ValueError as exc:
        record = logging.LogRecord(
            "chatops", logging.ERROR, __file__, 1, "calling %s", ("http://a:b@h/",), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert ScrubFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "calling http://***@h/" in text
    assert "boom at http://***@h/" in text
    assert SECRET not in text


_alphabet = string.ascii_letters + string.digits + " /:@?&=._-%*…'\"\n"
_pieces = st.sampled_from(
    [
        SECRET,
        "http://",
        "user:pw@",
        "?token=",
        "&key=",
        "xoxb-",
        "Bearer ",
        f"{TMP}/",
        "/tmp/",
        "…/",
        "***",
        "password=",
    ]
)
_texts = st.lists(st.one_of(_pieces, st.text(_alphabet, max_size=12)), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_scrubbing_is_idempotent(text: str) -> None:
    once = scrub(text)
    assert scrub(once) == once


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_alphabet, min_size=MIN_SECRET, max_size=16), min_size=1, max_size=3))
def test_no_registered_secret_survives(secrets: list[str]) -> None:
    # a scrubber of its own: arbitrary secrets must not leak into other tests' texts
    scrubber = Scrubber()
    scrubber.register_root(TMP)
    for secret in secrets:
        scrubber.register_secret(secret)
    text = " ".join(secrets) + "".join(reversed(secrets)) + f"http://u:{secrets[0]}@h/"
    cleaned = scrubber.scrub(text)
    assert [s for s in scrubber.secrets() if s in cleaned] == []
    assert scrubber.scrub(cleaned) == cleaned


def test_what_a_library_prints_is_scrubbed_even_when_a_credential_spans_two_writes() -> None:
    import io
    import sys

    shown = io.StringIO()
    before = sys.stdout
    sys.stdout = shown
    try:
        with core.scrub.scrubbed_output():
            sys.stdout.write("View experiment at: http://alice:pa")
            sys.stdout.write("ss-word-1@mlflow:5000/#/experiments/1\nnext ")
            print("line", flush=True)
            sys.stdout.write("\rtraining 50%")  # a progress line without its newline
    finally:
        sys.stdout = before
    assert shown.getvalue() == (
        "View experiment at: http://***@mlflow:5000/#/experiments/1\nnext line\n\rtraining 50%"
    )
