"""A loopback SMTP server (aiosmtpd) that records every message, with optional STARTTLS/AUTH.

``with FakeSMTP(tls=True, login=("user", "pw")) as smtp: ...`` listens on 127.0.0.1 with a
self-signed certificate made on the spot (``cryptography``) for 127.0.0.1 and localhost;
``smtp.client_context`` trusts exactly that certificate. With ``tls`` the server refuses
mail before STARTTLS, so a received message proves the upgrade happened. ``smtp.messages``
holds (mail_from, rcpt_tos, parsed message, was_tls) per message.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_cert() -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) for CN=localhost, SAN localhost and 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool


class _Recorder:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.fake._lock:
            self.fake.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), msg, bool(session.ssl))
            )
        return "250 Message accepted for delivery"


class FakeSMTP:
    def __init__(self, *, tls: bool = False, login: tuple[str, str] | None = None) -> None:
        self.tls = tls
        self.login = login
        self.messages: list[Received] = []
        self.auth_attempts: list[str] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.client_context: ssl.SSLContext | None = None
        self._controller: Any = None

    def _authenticator(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(data, LoginPassword) or self.login is None:
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        with self._lock:
            self.auth_attempts.append(user)
        return AuthResult(success=(user, password) == self.login, handled=False)

    def __enter__(self) -> FakeSMTP:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.tls:
            cert, key = self_signed_cert()
            with tempfile.TemporaryDirectory() as tmp:
                cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
                cert_file.write_bytes(cert)
                key_file.write_bytes(key)
                server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                server_ctx.load_cert_chain(cert_file, key_file)
            kwargs.update(tls_context=server_ctx, require_starttls=True)
            self.client_context = ssl.create_default_context(cadata=cert.decode())
        if self.login is not None:
            kwargs.update(
                authenticator=self._authenticator,
                auth_required=True,
                auth_require_tls=self.tls,
            )
        self._controller = Controller(
            _Recorder(self), hostname="127.0.0.1", port=self.port, ready_timeout=5.0, **kwargs
        )
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
