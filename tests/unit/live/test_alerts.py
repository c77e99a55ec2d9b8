from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import smtplib
import socket
import ssl

import pytest
import requests

from py_finance.errors import ConfigError
from py_finance.live.alerts import (
    ALERT_KINDS,
    Alert,
    AlertDeliveryError,
    Alerter,
    AlertSettings,
    ChannelResult,
    EmailChannel,
    RedactingFilter,
    Redactor,
    SlackChannel,
    alerter_from_env,
    install_redaction,
    secrets_from_env,
)
from tests.fakes.slack_server import FakeSlack, SlackReply
from tests.fakes.smtp_server import FakeSMTP, free_port

ON = AlertSettings(enabled=True, smtp_timeout_s=2.0, slack_timeout_s=2.0)
SESSION = dt.date(2024, 3, 15)
PASSWORD = "abcd efgh ijkl mnop"
ALPACA_SECRET = "AlpacaSecretKey0123456789abcdefghijklmnop"
ALPACA_KEY_ID = "PKFAKEKEYID0123456789"


def alert(kind: str = "error", body: str = "order AAPL rejected") -> Alert:
    return Alert(kind, "loop failed", body, "critical", SESSION)


def email_env(smtp: FakeSMTP, **extra: str) -> dict[str, str]:
    env = {
        "ALERT_EMAIL_SMTP_HOST": "127.0.0.1",
        "ALERT_EMAIL_SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL_USERNAME": "bot@example.com",
        "ALERT_EMAIL_PASSWORD": PASSWORD,
        "ALERT_EMAIL_FROM": "bot@example.com",
        "ALERT_EMAIL_TO": "ops@example.com, risk@example.com",
        "ALERT_SLACK_WEBHOOK_URL": "",
    }
    env.update(extra)
    return env


@pytest.fixture()
def tls_smtp():
    with FakeSMTP(tls=True, login=("bot@example.com", PASSWORD)) as smtp:
        yield smtp


# ---------------------------------------------------------------- e-mail
def test_email_alert_arrives_over_starttls_with_login(tls_smtp):
    alerter = alerter_from_env(email_env(tls_smtp), ON, ssl_context=tls_smtp.client_context)
    results = alerter.send(alert())
    assert results == [ChannelResult("email", True)]
    [got] = tls_smtp.messages
    assert got.tls
    assert got.mail_from == "bot@example.com"
    assert got.rcpt_tos == ["ops@example.com", "risk@example.com"]
    assert got.message["Subject"] == "[py-finance] CRITICAL: loop failed"
    assert got.message["From"] == "bot@example.com"
    assert got.message["To"] == "ops@example.com, risk@example.com"
    body = got.message.get_content()
    assert "order AAPL rejected" in body
    assert "kind: error, severity: critical, session: 2024-03-15" in body
    assert tls_smtp.auth_attempts == ["bot@example.com"]


def test_email_without_starttls_on_a_plain_loopback_server():
    with FakeSMTP() as smtp:
        channel = EmailChannel(
            "127.0.0.1", "bot@x.org", ["a@x.org"], port=smtp.port, starttls=False
        )
        Alerter([channel], ON).send(Alert("daily_summary", "day done", "equity 100", "info"))
        [got] = smtp.messages
    assert not got.tls
    assert got.message["Subject"] == "[py-finance] day done"
    assert got.rcpt_tos == ["a@x.org"]


def test_starttls_with_an_untrusted_certificate_fails_without_raising(tls_smtp):
    # The system trust store does not know the test certificate: the upgrade must fail.
    alerter = alerter_from_env(email_env(tls_smtp), ON)
    [result] = alerter.send(alert())
    assert not result.ok and "SSL" in result.error
    assert tls_smtp.messages == []


def test_email_auth_failure_is_reported_not_raised(tls_smtp, caplog):
    env = email_env(tls_smtp, ALERT_EMAIL_PASSWORD="wrong password 123")
    alerter = alerter_from_env(env, ON, ssl_context=tls_smtp.client_context)
    with caplog.at_level(logging.WARNING, logger="py_finance.live.alerts"):
        [result] = alerter.send(alert())
    assert not result.ok
    assert "SMTPAuthenticationError" in result.error
    assert tls_smtp.messages == []
    assert any("via email failed" in r.getMessage() for r in caplog.records)


def test_email_to_a_closed_port_is_reported_not_raised():
    channel = EmailChannel("127.0.0.1", "a@x.org", ["b@x.org"], port=free_port(), timeout_s=1.0)
    [result] = Alerter([channel], ON).send(alert())
    assert not result.ok and "ConnectionRefusedError" in result.error


def test_email_timeout_is_reported_not_raised():
    # A server that accepts the connection but never greets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        channel = EmailChannel("127.0.0.1", "a@x.org", ["b@x.org"], port=port, timeout_s=0.3)
        [result] = Alerter([channel], ON).send(alert())
    assert not result.ok and "timed out" in result.error


def test_starttls_code_path_calls_starttls_before_login(monkeypatch):
    calls: list[str] = []
    tls_context = ssl.create_default_context()

    class FakeSMTPClient:
        def __init__(self, host, port, timeout):
            calls.append(f"connect {host}:{port} {timeout}")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls.append("quit")

        def ehlo(self):
            calls.append("ehlo")

        def starttls(self, context=None):
            assert context is tls_context
            calls.append("starttls")

        def login(self, user, password):
            calls.append(f"login {user}")

        def send_message(self, msg, from_addr, to_addrs):
            calls.append(f"send {from_addr}->{to_addrs}")

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTPClient)
    EmailChannel(
        "smtp.example.com",
        "a@x.org",
        ["b@x.org"],
        username="a@x.org",
        password="pw12345",
        ssl_context=tls_context,
    ).send("s", "b")
    assert calls == [
        "connect smtp.example.com:587 10.0",
        "ehlo",
        "starttls",
        "ehlo",
        "login a@x.org",
        "send a@x.org->['b@x.org']",
        "quit",
    ]


# ---------------------------------------------------------------- Slack
def test_slack_alert_posts_json_text():
    with FakeSlack() as slack:
        env = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url, "ALERT_EMAIL_TO": ""}
        results = alerter_from_env(env, ON).send(alert("regime_change", "bull -> bear"))
    assert results == [ChannelResult("slack", True)]
    [post] = slack.posts
    assert post.path == slack.path
    assert post.headers["Content-Type"] == "application/json"
    assert set(post.json) == {"text"}
    assert post.json["text"].startswith("*[py-finance] CRITICAL: loop failed*\nbull -> bear")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(SlackReply(500, "server_error"), "HTTP 500"), (SlackReply(403, "invalid_token"), "HTTP 403")],
)
def test_slack_http_errors_are_reported_not_raised(reply, expected):
    with FakeSlack() as slack:
        slack.script(reply)
        [result] = Alerter([SlackChannel(slack.webhook_url)], ON).send(alert())
    assert not result.ok and expected in result.error


def test_slack_timeout_and_closed_port_are_reported_not_raised():
    with FakeSlack() as slack:
        slack.script(SlackReply(delay_s=2.0))
        channels = [
            SlackChannel(slack.webhook_url, timeout_s=0.3),
            SlackChannel(f"http://127.0.0.1:{free_port()}/services/T1/B1/tok", timeout_s=1.0),
        ]
        timeout, refused = Alerter(channels, ON).send(alert())
    assert not timeout.ok and "Timeout" in timeout.error
    assert not refused.ok and "ConnectionError" in refused.error


def test_one_failing_channel_does_not_stop_the_others():
    with FakeSlack() as slack:
        dead = EmailChannel("127.0.0.1", "a@x.org", ["b@x.org"], port=free_port())
        results = Alerter([dead, SlackChannel(slack.webhook_url)], ON).send(alert())
    assert [r.ok for r in results] == [False, True]
    assert len(slack.posts) == 1


# ---------------------------------------------------------------- settings and env
def test_events_filter_and_disabled_settings_send_nothing():
    with FakeSlack() as slack:
        only_errors = AlertSettings(enabled=True, events=("error", "halted"))
        alerter = Alerter([SlackChannel(slack.webhook_url)], only_errors)
        assert alerter.send(alert("daily_summary")) == []
        assert alerter.send(alert("regime_change")) == []
        assert [r.ok for r in alerter.send(alert("halted"))] == [True]
        assert Alerter([SlackChannel(slack.webhook_url)], AlertSettings()).send(alert()) == []
    assert len(slack.posts) == 1


def test_disabled_settings_build_no_channels():
    env = {"ALERT_EMAIL_TO": "a@x.org", "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"}
    assert alerter_from_env(env, AlertSettings()).channels == []


def test_empty_values_disable_channels(caplog):
    env = {
        "ALERT_EMAIL_SMTP_HOST": "smtp.gmail.com",
        "ALERT_EMAIL_TO": "",
        "ALERT_SLACK_WEBHOOK_URL": "",
    }
    with caplog.at_level(logging.WARNING):
        alerter = alerter_from_env(env, ON)
    assert alerter.channels == []
    assert alerter.send(alert()) == []
    assert "no channel is configured" in caplog.text


def test_env_builds_both_channels_with_settings_timeouts():
    env = {
        "ALERT_EMAIL_SMTP_HOST": "smtp.gmail.com",
        "ALERT_EMAIL_SMTP_PORT": "",
        "ALERT_EMAIL_USERNAME": "me@gmail.com",
        "ALERT_EMAIL_PASSWORD": PASSWORD,
        "ALERT_EMAIL_FROM": "",
        "ALERT_EMAIL_TO": "a@x.org,b@x.org",
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/secret-token-xyz",
    }
    settings = AlertSettings(enabled=True, smtp_timeout_s=3.0, slack_timeout_s=4.0)
    email_ch, slack_ch = alerter_from_env(env, settings).channels
    assert isinstance(email_ch, EmailChannel) and isinstance(slack_ch, SlackChannel)
    assert (email_ch.host, email_ch.port, email_ch.sender) == (
        "smtp.gmail.com",
        587,
        "me@gmail.com",
    )
    assert email_ch.recipients == ["a@x.org", "b@x.org"]
    assert email_ch.starttls and email_ch.timeout_s == 3.0
    assert slack_ch.timeout_s == 4.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALERT_EMAIL_TO": "a@x.org"}, "ALERT_EMAIL_SMTP_HOST"),
        ({"ALERT_EMAIL_TO": "a@x.org", "ALERT_EMAIL_SMTP_HOST": "h"}, "ALERT_EMAIL_FROM"),
        (
            {
                "ALERT_EMAIL_TO": "a@x.org",
                "ALERT_EMAIL_SMTP_HOST": "h",
                "ALERT_EMAIL_SMTP_PORT": "x",
            },
            "ALERT_EMAIL_SMTP_PORT",
        ),
        (
            {
                "ALERT_EMAIL_TO": "a@x.org",
                "ALERT_EMAIL_SMTP_HOST": "h",
                "ALERT_EMAIL_USERNAME": "u",
            },
            "ALERT_EMAIL_PASSWORD",
        ),
        ({"ALERT_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "ALERT_SLACK_WEBHOOK_URL"),
    ],
)
def test_half_configured_channels_raise_config_error(env, message):
    with pytest.raises(ConfigError, match=message):
        alerter_from_env(env, ON)


def test_settings_validation():
    assert AlertSettings().events == ALERT_KINDS
    assert AlertSettings(events=["error"]).events == ("error",)
    with pytest.raises(ConfigError, match="unknown kinds"):
        AlertSettings(events=("error", "lunch"))
    with pytest.raises(ConfigError, match="> 0"):
        AlertSettings(smtp_timeout_s=0)
    with pytest.raises(ValueError, match="kind"):
        Alert("lunch", "s", "b")
    with pytest.raises(ValueError, match="severity"):
        Alert("error", "s", "b", "fatal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert().kind = "halted"


# ---------------------------------------------------------------- secrets
def test_secrets_from_env_picks_secret_names_and_skips_short_values():
    env = {
        "ALERT_EMAIL_PASSWORD": PASSWORD,
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0TEAM123/B0HOOK456/tok3nVALUE",
        "APCA_API_SECRET_KEY": ALPACA_SECRET,
        "APCA_API_KEY_ID": ALPACA_KEY_ID,
        "MY_SERVICE_TOKEN": "tok-0123456789",
        "SOME_KEY_FLAG": "true",
        "ALERT_EMAIL_USERNAME": "bot@example.com",
        "HOME": "/home/someone",
        "EMPTY_SECRET": "",
    }
    found = set(secrets_from_env(env))
    assert {PASSWORD, "abcdefghijklmnop", ALPACA_SECRET, ALPACA_KEY_ID, "tok-0123456789"} <= found
    assert {
        "https://hooks.slack.com/services/T0TEAM123/B0HOOK456/tok3nVALUE",
        "/services/T0TEAM123/B0HOOK456/tok3nVALUE",
        "tok3nVALUE",
        "T0TEAM123",
    } <= found
    assert not {"true", "bot@example.com", "/home/someone", "", "services"} & found


def test_redactor_masks_longest_first():
    r = Redactor(["abc123", "xxabc123yy", ""])
    assert r("key=xxabc123yy and abc123.") == "key=*** and ***."
    assert Redactor([])("abc") == "abc"


def test_redacting_filter_masks_message_args_and_traceback():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
            self.format(record)

    logger = logging.getLogger("test_alerts.redaction")
    logger.propagate = False
    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        install_redaction(["s3cr3tvalue"], logger)
        install_redaction(["s3cr3tvalue", "otherSecret"], logger)  # replaces, not stacks
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("key %s in %r", "s3cr3tvalue", {"k": "otherSecret"})
        try:
            raise RuntimeError("bad key s3cr3tvalue")
        except RuntimeError:
            logger.exception("failed with %s", "otherSecret")
    finally:
        logger.removeHandler(handler)
    texts = [handler.format(r) for r in records]
    assert texts[0] == "key *** in {'k': '***'}"
    assert "RuntimeError: bad key ***" in texts[1]
    assert all("s3cr3tvalue" not in t and "otherSecret" not in t for t in texts)


def test_reprs_hold_no_secret():
    email_ch = EmailChannel("h", "a@x.org", ["b@x.org"], username="a@x.org", password="pw-secret")
    slack_ch = SlackChannel("https://hooks.slack.com/services/T1/B1/tok-secret")
    text = repr(Alerter([email_ch, slack_ch], ON))
    assert "pw-secret" not in text and "tok-secret" not in text


def test_no_secret_reaches_logs_alerts_or_errors(tls_smtp, caplog):
    with FakeSlack() as slack:
        env = email_env(
            tls_smtp,
            ALERT_SLACK_WEBHOOK_URL=slack.webhook_url,
            APCA_API_SECRET_KEY=ALPACA_SECRET,
            APCA_API_KEY_ID=ALPACA_KEY_ID,
        )
        token = slack.path.rsplit("/", 1)[1]
        secrets = [PASSWORD, "".join(PASSWORD.split()), ALPACA_SECRET, ALPACA_KEY_ID]
        secrets += [slack.webhook_url, slack.path, token, "wrong-password-42"]
        caplog.set_level(logging.DEBUG)  # urllib3 logs the webhook path at DEBUG
        root = logging.getLogger()
        redaction = install_redaction(secrets_from_env(env), root)
        try:
            alerter = alerter_from_env(env, ON, ssl_context=tls_smtp.client_context)
            leaky = (
                f"alpaca said 401 for key {ALPACA_KEY_ID}/{ALPACA_SECRET}; "
                f"webhook {slack.webhook_url}; password {PASSWORD}"
            )
            ok = alerter.send(alert(body=leaky))
            log = logging.getLogger("py_finance.live.loop")
            log.error("broker login failed: key=%s secret=%s", ALPACA_KEY_ID, ALPACA_SECRET)
            dead_url = f"http://127.0.0.1:{free_port()}{slack.path}"
            try:
                requests.post(dead_url, timeout=1)
            except requests.RequestException:
                log.exception("posting to %s failed", dead_url)
            # Failing channels: bad password over SMTP, HTTP 500 and a dead port for Slack.
            slack.script(SlackReply(500, f"echo {slack.path}"))
            bad_env = {**env, "ALERT_EMAIL_PASSWORD": "wrong-password-42"}
            failed = alerter_from_env(bad_env, ON, ssl_context=tls_smtp.client_context).send(
                alert(body=leaky.replace(PASSWORD, "wrong-password-42"))
            )
            dead = Alerter([SlackChannel(dead_url, timeout_s=1.0)], ON, [dead_url, slack.path])
            failed += dead.send(alert())
            with pytest.raises(AlertDeliveryError) as raised:
                SlackChannel(dead_url, timeout_s=1.0).send("s", "b")
        finally:
            for owner in (root, *root.handlers):
                owner.removeFilter(redaction)
    assert [r.ok for r in ok] == [True, True]
    assert [r.ok for r in failed] == [False, False, False]
    assert "***" in tls_smtp.messages[0].message.get_content()
    texts = [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    texts += [caplog.text, str(raised.value), repr(raised.value)]
    texts += [m.message.as_string() for m in tls_smtp.messages]
    texts += [p.raw.decode() for p in slack.posts if p.path == slack.path]
    texts += [r.error for r in failed]
    assert any(slack.path in line for line in texts) is False
    assert any("urllib3" in r.name for r in caplog.records)  # the DEBUG line was seen
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert not leaks, (secret, leaks)
