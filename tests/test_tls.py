"""TLS end to end (issue 2 point 7): HTTPS with a self-signed certificate made here, rotation on
SIGHUP without a restart, and clear failures for unusable certificate files."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(directory, name: str, common_name: str) -> tuple[str, str, bytes]:
    """A self-signed cert for 127.0.0.1/localhost: (cert path, key path, DER bytes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path), cert.public_bytes(serialization.Encoding.DER)


def served_cert(port: int) -> bytes:
    """The DER certificate the server presents on a new connection (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.getpeercert(binary_form=True)


def trusting(cert_path: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert_path)


def test_https_with_a_self_signed_certificate(daemon, tmp_path):
    cert, key, der = make_cert(tmp_path, "one", "cliproxyd-test-one")
    d = daemon({"tls": {"enable": True, "cert": cert, "key": key}, "api-keys": ["k"]})
    assert d.url.startswith("https://")
    resp = d.request("GET", "/healthz", ssl_context=trusting(cert))
    assert resp.status == 200 and resp.json() == {"status": "ok"}
    assert d.request("GET", "/v1/x", ssl_context=trusting(cert)).status == 401
    assert served_cert(d.port) == der
    assert "serving https on" in d.notifications[0]


def test_plain_http_is_not_served_on_a_tls_port(daemon, tmp_path):
    cert, key, _ = make_cert(tmp_path, "one", "one")
    d = daemon({"tls": {"enable": True, "cert": cert, "key": key}})
    with socket.create_connection(("127.0.0.1", d.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
        assert b"200 OK" not in reply


def test_certificate_rotation_on_sighup(daemon, tmp_path):
    cert, key, der_one = make_cert(tmp_path, "live", "first")
    d = daemon({"tls": {"enable": True, "cert": cert, "key": key}})
    old_conn = d.connection(ssl_context=trusting(cert))
    old_conn.request("GET", "/healthz")
    assert old_conn.getresponse().read() == b'{"status":"ok"}'

    rotated_dir = tmp_path / "rotated"
    rotated_dir.mkdir()
    new_cert, new_key, der_two = make_cert(rotated_dir, "live", "second")
    (tmp_path / "live.crt").write_bytes(Path(new_cert).read_bytes())
    (tmp_path / "live.key").write_bytes(Path(new_key).read_bytes())
    assert "serving https" in d.reload()

    assert served_cert(d.port) == der_two != der_one
    assert d.request("GET", "/healthz", ssl_context=trusting(new_cert)).status == 200
    # The connection made before the rotation keeps working.
    old_conn.request("GET", "/healthz")
    assert old_conn.getresponse().status == 200
    old_conn.close()


def test_broken_certificate_on_reload_keeps_the_old_one(daemon, tmp_path):
    cert, key, der = make_cert(tmp_path, "live", "first")
    d = daemon({"tls": {"enable": True, "cert": cert, "key": key}})
    (tmp_path / "live.crt").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    status = d.reload()
    assert "STATUS=reload failed: " in status and "tls.cert" in status
    assert served_cert(d.port) == der
    assert d.alive()


def test_unreadable_certificate_at_start_is_exit_78(daemon, tmp_path):
    d = daemon({"tls": {"enable": True, "cert": str(tmp_path / "missing.crt"),
                        "key": str(tmp_path / "missing.key")}}, start=False)
    d.spawn()
    assert d.proc.wait(30) == 78
    assert "config.yaml" in d.logs and "tls.cert" in d.logs and "missing.crt" in d.logs
    assert "Traceback" not in d.logs


def test_tls_can_be_switched_on_by_reload(daemon, tmp_path):
    cert, key, der = make_cert(tmp_path, "c", "c")
    d = daemon({})
    assert d.request("GET", "/healthz").status == 200
    d.reload({"tls": {"enable": True, "cert": cert, "key": key}})
    assert served_cert(d.port) == der
