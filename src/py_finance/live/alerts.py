"""Alerts by e-mail (SMTP + STARTTLS) and Slack (incoming webhook), and secret redaction.

The live loop reports errors, regime changes, daily summaries, readiness changes,
reconciliation differences, stale data and halts through an :class:`Alerter`. Sending never
raises: a channel that fails (refused connection, bad credentials, timeout, HTTP 500) is logged
as a warning and reported in the returned :class:`ChannelResult` list, and trading goes on.

Settings (:class:`AlertSettings`, from the config) hold no secrets; the SMTP account and the
webhook come from the environment (``.env``), read by :func:`alerter_from_env`:

=============================  ==========================================================
``ALERT_EMAIL_SMTP_HOST``      SMTP server (e.g. ``smtp.gmail.com``)
``ALERT_EMAIL_SMTP_PORT``      its STARTTLS port, 587 when empty
``ALERT_EMAIL_USERNAME``       SMTP login; empty means no login
``ALERT_EMAIL_PASSWORD``       SMTP password (for Gmail an App Password)
``ALERT_EMAIL_FROM``           sender address; the username when empty
``ALERT_EMAIL_TO``             comma-separated recipients; empty disables e-mail
``ALERT_SLACK_WEBHOOK_URL``    Slack incoming webhook; empty disables Slack
=============================  ==========================================================

Secret values (see :func:`secrets_from_env`) never reach logs, alerts or error texts:
:func:`install_redaction` puts a :class:`RedactingFilter` on the root logger's handlers, and
the alerter redacts every subject, body and channel error before it leaves the process.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import smtplib
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import quote, quote_plus, urlsplit

from py_finance.errors import ConfigError, PyFinanceError

log = logging.getLogger(__name__)

ALERT_KINDS = (
    "error",
    "regime_change",
    "daily_summary",
    "readiness_change",
    "reconciliation",
    "stale_data",
    "halted",
    "retrain",
    # The live monitor (py_finance.live.monitor): each alerts once when first breached.
    "tracking_difference",
    "shortfall",
    "feature_drift",
    "score_drift",
    "ic_decay",
)
SEVERITIES = ("info", "warning", "critical")
MASK = "***"
# Subjects (and Slack's bold first line) longer than this are shortened, after masking.
MAX_SUBJECT_LEN = 160

# Environment variables whose values are always secrets (when long enough to be one).
SECRET_ENV_VARS = (
    "ALERT_EMAIL_PASSWORD",
    "ALERT_SLACK_WEBHOOK_URL",
    "APCA_API_SECRET_KEY",
    "APCA_API_KEY_ID",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "TIINGO_API_KEY",
    "FINNHUB_API_KEY",
)
# Any other variable whose name contains one of these words is treated as a secret too.
SECRET_NAME_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN", "WEBHOOK")
# Shorter values are not redacted: masking "1" or "true" everywhere would wreck every log
# line and protect nothing. Named secrets may be shorter than values matched by name only.
MIN_NAMED_SECRET_LEN = 4
MIN_MATCHED_SECRET_LEN = 8
# Any run of this many characters of a secret is masked (a cut or wrapped secret).
MIN_SECRET_RUN = 8


# ---------------------------------------------------------------- redaction
class Redactor:
    """Replace every known secret value in a text with ``***``, in any form it travels in.

    A secret is masked whole, and so are its URL-encoded forms (``%2F``, ``+`` for a space)
    and its base64 forms (standard and URL-safe alphabets, at each of the three byte
    alignments, so the secret's part of ``base64("key:secret")`` for HTTP basic auth is
    masked too). Besides, any run of :data:`MIN_SECRET_RUN` or more characters of a secret
    (or of one of those forms) is masked: a secret cut by a truncation, wrapped across
    lines or elided in the middle (``'abc...xyz'``) leaks no piece long enough to matter.
    Endpoint URLs (a webhook) are masked whole only; their secret path and its segments
    are secrets of their own (:func:`secrets_from_env`).

    Redact the whole text before cutting it: a cut can only shorten a masked text.

    Parameters
    ----------
    secrets
        Secret values; empty strings are ignored. Longer values are replaced first, so a
        secret that contains another one is masked whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(
            sorted({s for s in secrets if s}, key=lambda s: (-len(s), s))
        )
        forms: set[str] = set()
        runs: set[str] = set()
        for secret in self.secrets:
            encoded = _forms(secret)
            forms.update(encoded)
            if not _is_endpoint(secret):
                for form in encoded:
                    runs.update(
                        run
                        for i in range(len(form) - MIN_SECRET_RUN + 1)
                        if not _public(run := form[i : i + MIN_SECRET_RUN])
                    )
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=lambda f: (-len(f), f))))
            if forms
            else None
        )
        self._runs: frozenset[str] = frozenset(runs)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret (whole, encoded or a long run of it) as ``***``."""
        if self._pattern is None or not text:
            return text
        spans = [m.span() for m in self._pattern.finditer(text)]
        if self._runs and len(text) >= MIN_SECRET_RUN:
            runs = self._runs
            n = MIN_SECRET_RUN
            spans += [(i, i + n) for i in range(len(text) - n + 1) if text[i : i + n] in runs]
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        start, end = spans[0]
        for s, e in spans[1:]:
            if s <= end:
                end = max(end, e)
                continue
            out += [text[pos:start], MASK]
            pos, (start, end) = end, (s, e)
        out += [text[pos:start], MASK, text[end:]]
        return "".join(out)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"


def _is_endpoint(value: str) -> bool:
    """A URL: masked whole, never by its runs ("https://hooks.sl" is no secret).

    Its secret parts are secrets of their own (the webhook's path and its segments).
    """
    return "://" in value


# Runs of a secret that are public text: Slack's webhook path starts with "/services/".
_PUBLIC_TEXT = ("/services/",)


def _public(run: str) -> bool:
    return any(run in text for text in _PUBLIC_TEXT)


def _base64_cores(value: str) -> list[str]:
    """The base64 characters that encode ``value`` alone, wherever it sits in a blob.

    ``value`` may start at any byte offset modulo 3 of the encoded data (``key:secret``
    puts the secret after the key), so each alignment is encoded, and only the characters
    whose six bits all come from ``value`` are kept.
    """
    data = value.encode("utf-8")
    cores = []
    for offset in range(3):
        padded = b"\0" * offset + data + b"\0\0"
        first = -(-8 * offset // 6)  # ceil: the first character of value's bits alone
        last = (8 * (offset + len(data))) // 6  # the first character past them
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(padded).decode("ascii")[first:last]
            if len(core) >= MIN_SECRET_RUN:
                cores.append(core)
    return cores


def _forms(secret: str) -> set[str]:
    """``secret`` and the encoded forms it may travel in (URL-encoded, base64)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    if not _is_endpoint(secret):
        forms.update(_base64_cores(secret))
    return {f for f in forms if f}


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in a record's message, arguments and traceback.

    The message is rendered (``msg % args``) and redacted, and the arguments are dropped, so
    secrets inside any argument (an exception, a URL, a dict) are masked too. A traceback is
    rendered into ``exc_text`` and redacted, and ``exc_info`` is cleared so no formatter
    renders the raw one again. The record is always let through.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always True."""
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep everything, as text, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(
    secrets: Iterable[str], logger: logging.Logger | None = None
) -> RedactingFilter:
    """Mask ``secrets`` in every record that reaches ``logger``'s handlers (root by default).

    Call it after logging is set up: handlers added later are not covered. A filter installed
    before by this function is replaced, so pass the full set of secrets each time. The filter
    also goes on the logger itself, for records logged to it directly.

    Returns
    -------
    RedactingFilter
        The installed filter.
    """
    target = logger if logger is not None else logging.getLogger()
    new = RedactingFilter(Redactor(secrets))
    for owner in (target, *target.handlers):
        for old in [f for f in owner.filters if isinstance(f, RedactingFilter)]:
            owner.removeFilter(old)
        owner.addFilter(new)
    return new


def _webhook_parts(url: str) -> list[str]:
    """The webhook URL, its path and its path tokens: each alone gives the hook away."""
    parts = [url]
    path = urlsplit(url).path
    if path.strip("/"):
        parts.append(path)
        parts += [
            seg
            for seg in path.split("/")
            if len(seg) >= MIN_MATCHED_SECRET_LEN and seg != "services"
        ]
    return parts


def secrets_from_env(env: Mapping[str, str]) -> list[str]:
    """Return the secret values of ``env`` to redact.

    These are the values of :data:`SECRET_ENV_VARS` (at least 4 characters) and of every other
    variable whose name contains PASSWORD, SECRET, KEY, TOKEN or WEBHOOK (at least 8
    characters). For webhook variables the URL's path and its path segments of 8 or more
    characters are added (each alone gives the hook away), and for values with spaces (Gmail
    App Passwords) the value without them.
    """
    found: set[str] = set()
    for name, raw in env.items():
        value = (raw or "").strip()
        upper = name.upper()
        if upper in SECRET_ENV_VARS:
            minimum = MIN_NAMED_SECRET_LEN
        elif any(word in upper for word in SECRET_NAME_WORDS):
            minimum = MIN_MATCHED_SECRET_LEN
        else:
            continue
        if len(value) < minimum:
            continue
        found.add(value)
        if any(c.isspace() for c in value):
            found.add("".join(value.split()))
        if "WEBHOOK" in upper:
            found.update(_webhook_parts(value))
    return sorted(found)


# ---------------------------------------------------------------- alerts and settings
@dataclass(frozen=True, slots=True)
class Alert:
    """One message to send.

    Parameters
    ----------
    kind
        One of :data:`ALERT_KINDS`; :class:`AlertSettings.events` filters on it.
    subject, body
        Plain text; both are redacted before sending.
    severity
        ``info``, ``warning`` or ``critical``.
    session
        The trading session it is about, if any.
    """

    kind: str
    subject: str
    body: str
    severity: str = "info"
    session: dt.date | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"alert kind must be one of {ALERT_KINDS}, got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Which alerts to send and how long to wait for a channel (no secrets here).

    Parameters
    ----------
    enabled
        Off by default: nothing is sent and no channel is built.
    events
        The alert kinds to send (default: all of :data:`ALERT_KINDS`).
    smtp_timeout_s, slack_timeout_s
        Seconds to wait for the SMTP server / the webhook before giving up.
    subject_prefix
        Starts every subject (and Slack message).
    """

    enabled: bool = False
    events: tuple[str, ...] = ALERT_KINDS
    smtp_timeout_s: float = 10.0
    slack_timeout_s: float = 10.0
    subject_prefix: str = "[py-finance]"

    def __post_init__(self) -> None:
        events = (self.events,) if isinstance(self.events, str) else tuple(self.events)
        object.__setattr__(self, "events", events)
        unknown = sorted(set(events) - set(ALERT_KINDS))
        if unknown:
            raise ConfigError(f"alerts.events has unknown kinds {unknown}; known: {ALERT_KINDS}")
        if not (self.smtp_timeout_s > 0 and self.slack_timeout_s > 0):
            raise ConfigError("alerts.smtp_timeout_s and alerts.slack_timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """The outcome of one alert on one channel; ``error`` is redacted, empty when ``ok``."""

    channel: str
    ok: bool
    error: str = ""


class AlertDeliveryError(PyFinanceError):
    """A channel could not deliver an alert (its message holds no secret)."""


class Channel(Protocol):
    """Something that delivers a rendered alert, raising on failure."""

    name: str

    def send(self, subject: str, body: str) -> None:
        """Deliver one message or raise."""
        ...


# ---------------------------------------------------------------- channels
class EmailChannel:
    """E-mail through an SMTP server, upgraded with STARTTLS before logging in.

    Parameters
    ----------
    host, port
        The SMTP server and its submission port (587).
    sender
        The From address.
    recipients
        To addresses (at least one).
    username, password
        Login; no login when ``username`` is empty.
    starttls
        Upgrade the connection with STARTTLS (default). Only a loopback test server or a
        trusted local relay should run without it.
    timeout_s
        Seconds to wait for the server on each step.
    ssl_context
        TLS settings for STARTTLS; the system's default trust store when None.
    """

    name = "email"

    def __init__(
        self,
        host: str,
        sender: str,
        recipients: Sequence[str],
        *,
        port: int = 587,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise ConfigError("e-mail alerts need an SMTP host (ALERT_EMAIL_SMTP_HOST)")
        if not sender:
            raise ConfigError("e-mail alerts need a sender (ALERT_EMAIL_FROM)")
        self.recipients = [r.strip() for r in recipients if r.strip()]
        if not self.recipients:
            raise ConfigError("e-mail alerts need at least one recipient (ALERT_EMAIL_TO)")
        if username and not password:
            raise ConfigError("ALERT_EMAIL_USERNAME is set but ALERT_EMAIL_PASSWORD is empty")
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self._redact = Redactor([password] if password else [])

    def __repr__(self) -> str:
        return (
            f"EmailChannel({self.host}:{self.port}, from={self.sender}, "
            f"to={self.recipients}, starttls={self.starttls})"
        )

    def message(self, subject: str, body: str) -> EmailMessage:
        """Build the e-mail of one alert."""
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(body)
        return msg

    def send(self, subject: str, body: str) -> None:
        """Send one e-mail.

        Raises
        ------
        AlertDeliveryError
            The server could not be reached, refused STARTTLS or the login, or timed out.
        """
        msg = self.message(subject, body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self._password)
                smtp.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        except (OSError, smtplib.SMTPException) as exc:
            # ``from None``: the chained exception would carry the server dialogue.
            raise AlertDeliveryError(
                self._redact(
                    f"e-mail via {self.host}:{self.port} failed: {type(exc).__name__}: {exc}"
                )
            ) from None


class SlackChannel:
    """Slack through an incoming webhook: POST ``{"text": ...}`` as JSON.

    Parameters
    ----------
    webhook_url
        The webhook (a secret: its path is the token).
    timeout_s
        Seconds to wait for connecting and for the answer.
    """

    name = "slack"

    def __init__(self, webhook_url: str, *, timeout_s: float = 10.0) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ConfigError("ALERT_SLACK_WEBHOOK_URL must be an http(s) URL")
        self._url = webhook_url
        self.timeout_s = timeout_s
        self._redact = Redactor(_webhook_parts(webhook_url))

    def __repr__(self) -> str:
        return f"SlackChannel({urlsplit(self._url).hostname}, webhook={MASK})"

    def send(self, subject: str, body: str) -> None:
        """Post one message.

        Raises
        ------
        AlertDeliveryError
            The webhook could not be reached, timed out or answered with an HTTP error.
        """
        import requests

        text = f"*{subject}*\n{body}" if body else f"*{subject}*"
        try:
            resp = requests.post(self._url, json={"text": text}, timeout=self.timeout_s)
        except requests.RequestException as exc:
            # requests' messages name the URL, hence the redaction and ``from None``.
            raise AlertDeliveryError(
                self._redact(f"Slack webhook failed: {type(exc).__name__}: {exc}")
            ) from None
        if resp.status_code >= 400:
            raise AlertDeliveryError(
                # Masked whole before the cut, so no piece of a secret is left at the edge.
                self._redact(f"Slack webhook answered HTTP {resp.status_code}: {resp.text}")[:240]
            )


# ---------------------------------------------------------------- alerter
class Alerter:
    """Send alerts to every channel; never raises.

    Parameters
    ----------
    channels
        Where alerts go (none: nothing is sent).
    settings
        Whether alerts are on and which kinds go out.
    secrets
        Values masked in every subject, body and error text.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        settings: AlertSettings,
        secrets: Iterable[str] = (),
    ) -> None:
        self.channels = list(channels)
        self.settings = settings
        self.redact = Redactor(secrets)

    def __repr__(self) -> str:
        return f"Alerter({self.channels}, enabled={self.settings.enabled})"

    def render(self, alert: Alert) -> tuple[str, str]:
        """Return the redacted (subject, body) of ``alert`` as the channels receive them."""
        level = "" if alert.severity == "info" else f"{alert.severity.upper()}: "
        subject = f"{self.settings.subject_prefix} {level}{alert.subject}".strip()
        facts = [f"kind: {alert.kind}", f"severity: {alert.severity}"]
        if alert.session is not None:
            facts.append(f"session: {alert.session.isoformat()}")
        body = f"{alert.body.rstrip()}\n\n-- \n{', '.join(facts)}\n"
        # Masked whole, then shortened: a cut before the masking could leave a secret's head.
        subject = self.redact(" ".join(subject.split()))
        if len(subject) > MAX_SUBJECT_LEN:
            subject = subject[: MAX_SUBJECT_LEN - 3].rstrip() + "..."
        return subject, self.redact(body)

    def send(self, alert: Alert) -> list[ChannelResult]:
        """Send ``alert`` to every channel.

        Returns
        -------
        list[ChannelResult]
            One per channel tried; empty when alerts are off or ``alert.kind`` is not in
            ``settings.events``. A failed channel is logged as a warning, never raised.
        """
        if not self.settings.enabled or alert.kind not in self.settings.events:
            log.debug("alert %s not sent (disabled or filtered): %s", alert.kind, alert.subject)
            return []
        subject, body = self.render(alert)
        results = []
        for channel in self.channels:
            try:
                channel.send(subject, body)
            except Exception as exc:  # any failure: the loop must go on trading
                error = self.redact(f"{type(exc).__name__}: {exc}")
                log.warning("alert %r via %s failed: %s", subject, channel.name, error)
                results.append(ChannelResult(channel.name, False, error))
            else:
                log.info("alert %r sent via %s", subject, channel.name)
                results.append(ChannelResult(channel.name, True))
        return results


def _env(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def alerter_from_env(
    env: Mapping[str, str],
    settings: AlertSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> Alerter:
    """Build the alerter from ``ALERT_*`` variables (see the module docstring).

    E-mail is on when ``ALERT_EMAIL_TO`` is set, Slack when ``ALERT_SLACK_WEBHOOK_URL`` is;
    with ``settings.enabled`` False no channel is built. Every secret of ``env`` (see
    :func:`secrets_from_env`) is redacted from what the alerter sends.

    Parameters
    ----------
    ssl_context
        TLS settings for SMTP STARTTLS (default: the system trust store).

    Raises
    ------
    ConfigError
        E-mail is half configured (recipients without a host, a bad port, a username without
        a password) or the webhook is not a URL.
    """
    secrets = secrets_from_env(env)
    channels: list[Channel] = []
    if settings.enabled:
        to = [a.strip() for a in _env(env, "ALERT_EMAIL_TO").split(",") if a.strip()]
        if to:
            port_text = _env(env, "ALERT_EMAIL_SMTP_PORT") or "587"
            try:
                port = int(port_text)
            except ValueError:
                raise ConfigError(
                    f"ALERT_EMAIL_SMTP_PORT must be a port number, got {port_text!r}"
                ) from None
            username = _env(env, "ALERT_EMAIL_USERNAME")
            channels.append(
                EmailChannel(
                    _env(env, "ALERT_EMAIL_SMTP_HOST"),
                    _env(env, "ALERT_EMAIL_FROM") or username,
                    to,
                    port=port,
                    username=username,
                    # Not stripped: a password may end in a space.
                    password=env.get("ALERT_EMAIL_PASSWORD") or "",
                    timeout_s=settings.smtp_timeout_s,
                    ssl_context=ssl_context,
                )
            )
        webhook = _env(env, "ALERT_SLACK_WEBHOOK_URL")
        if webhook:
            channels.append(SlackChannel(webhook, timeout_s=settings.slack_timeout_s))
        if not channels:
            log.warning(
                "alerts are enabled but no channel is configured: "
                "set ALERT_EMAIL_TO (and the SMTP account) or ALERT_SLACK_WEBHOOK_URL"
            )
    return Alerter(channels, settings, secrets)
