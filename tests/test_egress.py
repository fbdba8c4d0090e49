"""The egress policy's pure core (vectors), and its transport on loopback with a scripted resolver."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.http_push import DestinationRefused
from broker.egress import STRICT, Address, EgressPolicy, EgressRefused, GuardedTransport, is_under_origins, origin
from broker.settings import Settings

DEVELOPMENT_LOOPBACK = EgressPolicy(True, (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1")))


def refusal(policy: EgressPolicy, url: str) -> str:
    with pytest.raises(EgressRefused) as refused:
        policy.check_url(url)
    return refused.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "egress.scheme_not_allowed"),
        ("gopher://portal.example:70/_POST", "egress.scheme_not_allowed"),
        ("ftp://portal.example/", "egress.scheme_not_allowed"),
        ("//portal.example/hook", "egress.scheme_not_allowed"),
        ("http://portal.example/hook", "egress.https_required"),
        ("http://127.0.0.1:8000/internal/admin", "egress.https_required"),
        ("https://user:secret@portal.example/", "egress.malformed"),
        ("https://portal.example@127.0.0.1/", "egress.malformed"),
        ("https://portal.example\\@127.0.0.1/", "egress.malformed"),
        ("https://portal.example /", "egress.malformed"),
        ("https://portal.example\t/", "egress.malformed"),
        ("https://münchen.example/", "egress.malformed"),
        ("https:///hook", "egress.malformed"),
        ("https://portal.example:0/", "egress.malformed"),
        ("https://portal.example:99999/", "egress.malformed"),
        ("https://portal.example:https/", "egress.malformed"),
        ("https://[::1/hook", "egress.malformed"),
        ("https://[zzz]/hook", "egress.malformed"),
    ],
)
def test_what_no_outbound_url_may_look_like(url: str, reason: str) -> None:
    assert refusal(STRICT, url) == reason


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",  # the legacy forms resolvers accept
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::7f00:1]",  # IPv4-compatible
        "[2002:7f00:1::1]",  # 6to4 around loopback
        "[64:ff9b::a00:1]",  # NAT64 around 10.0.0.1
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "[fe80::1]",
        "[fc00::1]",
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",
        "[::]",
        "224.0.0.1",
        "255.255.255.255",
        "198.51.100.7",  # documentation
    ],
)
def test_addresses_that_are_not_public_are_refused(host: str) -> None:
    assert refusal(STRICT, f"https://{host}/evidence") == "egress.address_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "https://portal.example/hook",
        "https://PORTAL.example:8443/a?b=c",
        "https://93.184.216.34/",
        "https://[2606:4700::1111]/",
    ],
)
def test_public_https_destinations_pass(url: str) -> None:
    STRICT.check_url(url)


def test_plain_http_only_to_loopback_and_only_in_development() -> None:
    DEVELOPMENT_LOOPBACK.check_url("http://127.0.0.1:8000/hook")
    DEVELOPMENT_LOOPBACK.check_url("http://[::1]:8000/hook")
    DEVELOPMENT_LOOPBACK.check_url("http://localhost:8000/hook")
    assert refusal(DEVELOPMENT_LOOPBACK, "http://portal.example/hook") == "egress.https_required"
    assert refusal(DEVELOPMENT_LOOPBACK, "http://10.0.0.1/hook") == "egress.https_required"
    production = EgressPolicy(False, DEVELOPMENT_LOOPBACK.allowed_networks)
    assert refusal(production, "http://127.0.0.1:8000/hook") == "egress.https_required"
    production.check_url("https://127.0.0.1:8443/hook")  # allow-listed, over https
    # Development alone allows no address: loopback, too, must be allow-listed.
    assert refusal(EgressPolicy(development=True), "http://127.0.0.1:8000/") == "egress.address_not_allowed"


def test_the_allow_list_names_networks_addresses_and_hosts() -> None:
    settings = Settings(env="production", egress_allow=" 10.20.0.0/16, ::1 ,authority.internal., 192.168.7.7")
    policy = EgressPolicy.from_settings(settings)
    assert not policy.development
    policy.check_address("x", ipaddress.ip_address("10.20.3.4"))
    policy.check_address("x", ipaddress.ip_address("::1"))
    policy.check_address("x", ipaddress.ip_address("::ffff:192.168.7.7"))
    policy.check_address("authority.internal", ipaddress.ip_address("10.99.0.1"))
    for host, address in [("x", "10.21.0.1"), ("x", "127.0.0.1"), ("other.internal", "10.99.0.1")]:
        with pytest.raises(EgressRefused):
            policy.check_address(host, ipaddress.ip_address(address))
    with pytest.raises(ValueError, match="neither a network"):
        EgressPolicy.from_settings(Settings(egress_allow="10.0.0.0/8, not a host!"))


def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    public, loopback = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")
    STRICT.check_resolved("portal.example", [public])
    with pytest.raises(EgressRefused):
        STRICT.check_resolved("portal.example", [public, loopback])
    with pytest.raises(EgressRefused):
        STRICT.check_resolved("portal.example", [])


def test_origins_are_normalised_and_nothing_more() -> None:
    assert origin("https://Portal.Example:443/") == "https://portal.example"
    assert origin("https://portal.example:8443") == "https://portal.example:8443"
    assert origin("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert origin("https://[::1]:8443") == "https://[::1]:8443"
    for not_an_origin in ("https://portal.example/hooks", "https://portal.example/?a", "https://portal.example#x"):
        with pytest.raises(EgressRefused) as refused:
            origin(not_an_origin)
        assert refused.value.reason == "egress.not_an_origin"


@pytest.mark.parametrize(
    ("url", "under"),
    [
        ("https://portal.example/hook", True),
        ("https://PORTAL.example:443/hook?x=1", True),
        ("https://portal.example:8443/hook", False),
        ("http://portal.example/hook", False),
        ("https://portal.example.evil.test/hook", False),
        ("https://evil.test/?https://portal.example", False),
        ("https://portal.example@evil.test/", False),
        ("https://evil.test\\@portal.example/", False),
        ("javascript:alert(1)//https://portal.example", False),
        ("/relative", False),
    ],
)
def test_a_url_is_under_an_origin_only_with_the_same_scheme_host_and_port(url: str, under: bool) -> None:
    assert is_under_origins(url, ["https://portal.example", "https://other.example"]) is under


# --- the transport: the address checked is the address connected to -----------------------


class _Hello(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        _Hello.hosts.append(self.headers["Host"])
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: Any) -> None:
        pass


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (its own CA): the server's, and what the client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An https server on loopback whose certificate names ``authority.test``; yields its port and CA file."""
    cert_file, key_file = _certificate(tmp_path, "authority.test")
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hello.hosts.clear()
    try:
        yield server.server_address[1], cert_file
    finally:
        server.shutdown()
        server.server_close()


class ScriptedResolver:
    """Answers each lookup with the next scripted answer, and counts the lookups."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self._answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.lookups.append(host)
        return [ipaddress.ip_address(a) for a in self._answers[min(len(self.lookups), len(self._answers)) - 1]]


def _get(policy: EgressPolicy, resolver: ScriptedResolver, url: str, ca_file: Path | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        transport = GuardedTransport(policy, verify=verify, resolver=resolver)
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            return await client.get(url)

    return asyncio.run(call())


def test_the_connection_goes_to_the_address_checked_and_tls_still_checks_the_name(
    tls_server: tuple[int, Path],
) -> None:
    port, ca_file = tls_server
    # Loopback stands in for a public address here: the allow-list lets it through.
    policy = EgressPolicy(False, (ipaddress.ip_network("127.0.0.0/8"),))
    # A rebinding resolver: the second answer would point elsewhere; there must be no second lookup.
    resolver = ScriptedResolver(["127.0.0.1"], ["10.0.0.1"])
    answer = _get(policy, resolver, f"https://authority.test:{port}/hello", ca_file)
    assert answer.status_code == 200 and answer.content == b"hello"
    assert resolver.lookups == ["authority.test"]
    assert _Hello.hosts == [f"authority.test:{port}"]
    # The certificate names authority.test: a name it does not hold fails even at the same address.
    with pytest.raises(httpx.ConnectError):
        _get(policy, ScriptedResolver(["127.0.0.1"]), f"https://other.test:{port}/hello", ca_file)


def test_a_name_that_resolves_to_a_forbidden_address_is_never_connected_to(tls_server: tuple[int, Path]) -> None:
    port, ca_file = tls_server
    for answers in (["127.0.0.1"], ["93.184.216.34", "127.0.0.1"], ["::ffff:127.0.0.1"]):
        with pytest.raises(DestinationRefused) as refused:
            _get(STRICT, ScriptedResolver(answers), f"https://authority.test:{port}/hello", ca_file)
        assert refused.value.reason == "egress.address_not_allowed"
    with pytest.raises(DestinationRefused) as refused:
        _get(STRICT, ScriptedResolver(["127.0.0.1"]), f"http://authority.test:{port}/hello")
    assert refused.value.reason == "egress.https_required"
    assert _Hello.hosts == []
