"""Secrets masked on the ways out the log filter and the alerter do not cover."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import textwrap
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.live.alerts import Redactor
from py_finance.live.redaction import RedactingStream, excerpt, redact_exception, redact_json

KEY = "PKECHOEDKEY0123456789"
SECRET = "s3cr3t/Value+0987654321"


def test_a_stream_masks_a_secret_written_in_pieces():
    out = io.StringIO()
    stream = RedactingStream(out, Redactor([KEY]))
    stream.write("error: alpaca said key PKECHO")
    stream.write("EDKEY0123456789 is bad")
    assert out.getvalue() == ""  # held until the line is complete
    stream.write("\nnext line\npartial")
    assert out.getvalue() == "error: alpaca said key *** is bad\nnext line\n"
    stream.flush()
    assert out.getvalue().endswith("partial")
    assert KEY not in out.getvalue()


def test_exceptions_are_masked_along_their_chain():
    class BodyError(Exception):
        def __init__(self, body):
            super().__init__(body)
            self._error = body

    try:
        try:
            raise BodyError(f'{{"message": "key {KEY}"}}')
        except BodyError as inner:
            raise RuntimeError(f"broker failed: {inner}") from inner
    except RuntimeError as exc:
        caught = exc
    redact_exception(caught, Redactor([KEY]))
    assert KEY not in str(caught) and "***" in str(caught)
    cause = caught.__cause__
    assert isinstance(cause, BodyError)
    assert KEY not in str(cause) and KEY not in cause._error


def test_json_values_and_keys_are_masked():
    doc = {"errors": [f"a {KEY}"], f"x{SECRET}": {"n": 1, "s": (SECRET,)}}
    assert redact_json(doc, Redactor([KEY, SECRET])) == {
        "errors": ["a ***"],
        "x***": {"n": 1, "s": ["***"]},
    }


@pytest.mark.parametrize("failure", ["error", "traceback"])
def test_the_terminal_never_shows_a_secret(failure, tmp_path):
    # A process that installed output redaction: a CLI error line, a print, a log record
    # and an unexpected traceback all name the key; none reaches stdout or stderr.
    script = tmp_path / "leak.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, os, sys
            from py_finance.errors import PyFinanceError, cli_errors
            from py_finance.live.alerts import secrets_from_env
            from py_finance.live.redaction import install_output_redaction

            @cli_errors
            def main():
                install_output_redaction(secrets_from_env(os.environ))
                logging.basicConfig(level=logging.INFO)
                key = os.environ["APCA_API_KEY_ID"]
                print("sending with", key)
                logging.getLogger("x").warning("alpaca said: %s", key)
                if {failure!r} == "error":
                    raise PyFinanceError(f"alpaca refused key {{key}}")
                raise RuntimeError(f"unexpected: {{key}}")

            main()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={"APCA_API_KEY_ID": KEY, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == (2 if failure == "error" else 1)
    both = done.stdout + done.stderr
    assert "sending with ***" in done.stdout
    assert "alpaca said: ***" in done.stderr
    assert ("error: alpaca refused key ***" if failure == "error" else "unexpected: ***") in both
    assert KEY not in both


# ---------------------------------------------------------------- any form, any cut
SECRET_CHARS = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="*")
BREAKS = ["\n", "\r\n", "\n    ", " ", "\\\n", "-\n"]


def runs(value: str, n: int = 8) -> set[str]:
    return {value[i : i + n] for i in range(len(value) - n + 1)}


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(SECRET_CHARS, min_size=8, max_size=64),
    key=st.text(SECRET_CHARS, min_size=8, max_size=32),
    noise=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    cuts=st.lists(st.integers(min_value=1, max_value=63), max_size=4),
    wrap=st.sampled_from(BREAKS),
    limit=st.integers(min_value=0, max_value=600),
)
def test_no_8_characters_of_a_secret_survive_a_wrap_an_encoding_or_a_cut(
    secret, key, noise, cuts, wrap, limit
):
    # The secret wrapped at random points, URL-encoded, in a basic-auth header, next to
    # random text; then cut at a random length, as an error excerpt is.
    points = sorted({c for c in cuts if c < len(secret)})
    pieces = [secret[a:b] for a, b in zip([0, *points], [*points, len(secret)], strict=True)]
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    text = (
        f"{noise} secret={wrap.join(pieces)} quoted={quote(secret, safe='')} "
        f"plus={quote_plus(secret)} Authorization: Basic {basic} {noise}"
    )
    redact = Redactor([key, secret])
    for out in (redact(text), excerpt(text, redact, limit)):
        assert not runs(secret) & runs(out)
        assert not runs(key) & runs(out)
        assert not runs(quote(secret, safe="")) & runs(out)
        # Of the basic-auth value only the characters that mix key and ':' and secret
        # bits, or the padding, may be left between masks.
        basic_at = out.find("Authorization: Basic ")
        if basic_at >= 0:
            tail = out[basic_at + len("Authorization: Basic ") :].split(" ")[0]
            assert all(len(part) <= 4 for part in tail.split("***")), tail


def test_a_secret_cut_at_the_limit_leaks_none_of_its_head():
    head = "x" * 96
    text = f"{head}{SECRET} and more"
    cut_first = Redactor([SECRET])(text[:120])  # the old order: cut, then mask
    assert SECRET[:24] not in cut_first  # masked now as a run, even without the whole
    assert excerpt(text, Redactor([SECRET]), 120) == f"{head}*** and more"


def test_base64_url_and_elided_forms_are_masked():
    r = Redactor([KEY, SECRET])
    # Only the last characters, which mix the secret's bits with the padding, are left.
    assert r(base64.b64encode(SECRET.encode()).decode()) == "***E="
    assert r(base64.urlsafe_b64encode(f"x{SECRET}".encode()).decode()).startswith("eH***")
    assert r(quote(SECRET, safe="")) == "***" and r(quote_plus(SECRET)) == "***"
    # pydantic elides a long value in the middle: both ends are runs of the secret.
    assert r(f"input_value='{KEY}:{SECRET[:10]}...{SECRET[-10:]}'") == "input_value='***:***...***'"


def test_urls_are_masked_whole_not_by_their_runs():
    hook = "https://hooks.slack.com/services/T0TEAM123/B0BOT4567/abcdefghijklmnop"
    r = Redactor([hook, "abcdefghijklmnop"])
    assert r(f"posting to {hook}") == "posting to ***"
    assert r("see https://hooks.slack.com/other") == "see https://hooks.slack.com/other"
    assert r("token ghijklmnop") == "token ***"
    path = "/services/T0TEAM123/B0BOT4567/abcdefghijklmnop"
    assert Redactor([path])("Slack /services/ and /B0BOT4567") == "Slack /services/ and ***"
