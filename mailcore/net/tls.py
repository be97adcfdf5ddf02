"""TLS contexts for the mail listeners.

``TLS_CERT_FILE``/``TLS_KEY_FILE`` in production; for development a self-signed pair for
``MAIL_HOSTNAME`` is made once under ``VAR_DIR/tls`` and reused.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from functools import lru_cache
from pathlib import Path

from django.conf import settings


def _make_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def cert_and_key_paths() -> tuple[Path, Path]:
    if settings.TLS_CERT_FILE and settings.TLS_KEY_FILE:
        return Path(settings.TLS_CERT_FILE), Path(settings.TLS_KEY_FILE)
    tls_dir = Path(settings.VAR_DIR) / "tls"
    cert_path, key_path = tls_dir / "selfsigned.crt", tls_dir / "selfsigned.key"
    if not cert_path.exists() or not key_path.exists():
        _make_self_signed(cert_path, key_path, settings.MAIL_HOSTNAME)
    return cert_path, key_path


@lru_cache(maxsize=4)
def server_context() -> ssl.SSLContext:
    cert_path, key_path = cert_and_key_paths()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx


def client_context(*, verify: bool = False) -> ssl.SSLContext:
    """For outbound SMTP: opportunistic TLS does not verify (RFC 7435) unless asked to."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
