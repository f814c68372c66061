"""Whatever text arrives, the grammar answers with a command or a specific usage error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commands.base import UsageError
from commands.registry import COMMANDS, parse
from core.marks import plain

NAMES = st.sampled_from([*COMMANDS, "launch", "", "DEPLOY", "/status", "déployer"])
WORDS = st.sampled_from(
    [
        "iris",
        "v1",
        "v0",
        "@champion",
        "to",
        "in",
        "prod",
        "2cpu",
        "512mb",
        "x3",
        "replicas",
        "because",
        "run",
        "as",
        "apr-1a2b3c4d5e",
        "public",
        "-1",
        "1e9",
        "0.5",
        "`",
        "'; DROP TABLE",
        "<@U123>",
        "\u202e",
        "🚀",
        "\x00",
        "$(rm -rf /)",
        "{{7*7}}",
        "%s%n",
        "..",
        "\n",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=600),
    st.lists(WORDS, max_size=12).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=490, max_size=520),
)


@settings(max_examples=400, deadline=None)
@given(name=NAMES, text=TEXTS)
def test_parse_never_raises_and_errors_say_what_to_type(name: str, text: str) -> None:
    found = parse(name, text)
    if isinstance(found, UsageError):
        assert found.problem.strip()
        if name.lstrip("/").lower() in COMMANDS:
            assert "Usage: `/" in plain(found.text) and "Example: `/" in plain(found.text)
        assert len(found.text) < 1200  # quoted input is cut, never echoed whole
    else:
        module, parsed = found
        assert name.lstrip("/").lower() == module.NAME
        assert parsed is not None
