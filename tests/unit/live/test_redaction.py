"""Secrets masked on the ways out the log filter and the alerter do not cover."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

from py_finance.live.alerts import Redactor
from py_finance.live.redaction import RedactingStream, redact_exception, redact_json

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
