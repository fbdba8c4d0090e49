"""The egress policy: the one rule for where the broker may send a request.

The broker sends personal data out in two ways only: push calls to authorities
(``adapters.http_push``, whose transport ``broker.bootstrap`` injects from here) and signed
callbacks to requesters (``broker.callbacks.sender``). The third outbound client, the citizens'
sign-in (``broker.citizen.signin``: discovery, keys and token calls to the OpenID Provider),
sends none, and is held to the same rules. All go through a transport built here,
and every URL that names such a destination is checked when it is written: authority
endpoints (``broker.registry``), requesters' callback origins (``broker.clients``).

The rules:

* ``https`` only; plain ``http`` only to loopback, and only with ``BROKER_ENV=development``.
* ASCII only (host names in punycode), no spaces, control characters or backslashes, no user
  name or password: URL parsers disagree on such URLs, and a URL must mean one place.
* Every address the host resolves to must be a public unicast address. Loopback, private
  (RFC 1918, unique local), link-local (where cloud metadata services answer), shared (CGNAT),
  multicast, reserved and unspecified addresses are refused, also inside an IPv6 address that
  embeds one (IPv4-mapped, 6to4, NAT64), unless ``BROKER_EGRESS_ALLOW`` names the address's
  network or the host.
* The addresses are checked when the connection is opened, and the connection goes to an
  address that was checked: a second DNS answer (DNS rebinding) never gets a say.
* Redirects are never followed (every client is built with ``follow_redirects=False``).

A URL being written is checked without DNS: an authority being onboarded may not resolve yet,
and what counts is the address at connect time. What can be judged without DNS is judged then:
the scheme, the form, and the address when the host is one, in any form a resolver accepts
(``127.1``, ``0x7f.1``, ``2130706433``), or a name that is loopback by definition (``localhost``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from adapters.http_push import DestinationRefused
from broker.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]

DEFAULT_PORTS = {"https": 443, "http": 80}
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
# IPv6 ranges whose low 32 bits are an IPv4 address that the packet reaches.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


class EgressRefused(ValueError):
    """A destination the policy refuses; ``reason`` is a stable code (``egress.…``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # lower case, without brackets or a trailing dot
    port: int

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def destination(url: str) -> Destination:
    """Where a URL points (scheme, host, port); refuses what no outbound call may look like."""
    if not url.isascii() or any(ch <= " " or ch in "\\\x7f" for ch in url):
        raise EgressRefused(
            "egress.malformed",
            "The URL must be ASCII (host names in punycode), without spaces, control characters or backslashes.",
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed or invalid [IPv6] host
        raise EgressRefused("egress.malformed", "The URL cannot be parsed.") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise EgressRefused(
            "egress.scheme_not_allowed", f"The scheme {scheme or '(none)'!r} is not allowed; use https."
        )
    if "@" in parts.netloc:
        raise EgressRefused("egress.malformed", "The URL must not carry a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EgressRefused("egress.malformed", "The URL names no host.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise EgressRefused("egress.malformed", "The URL's port must be a number from 1 to 65535.")
    return Destination(scheme, host, port if port is not None else DEFAULT_PORTS[scheme])


def origin(url: str) -> str:
    """A callback origin as it is registered: ``scheme://host[:port]``, normalised; refuses anything more."""
    target = destination(url)
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EgressRefused(
            "egress.not_an_origin", "An origin is scheme://host[:port], without a path, query or fragment."
        )
    return target.origin


def is_under_origins(url: str, origins: Iterable[str]) -> bool:
    """True if ``url`` points to one of ``origins`` (as :func:`origin` normalised them)."""
    try:
        return destination(url).origin in set(origins)
    except EgressRefused:
        return False


def named_address(host: str) -> Address | None:
    """The address a host names by itself, without DNS: a literal in any form resolvers accept, or localhost."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):  # loopback by definition (RFC 6761)
        return _LOOPBACK
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        return None
    try:
        # inet_aton reads the legacy forms (127.1, 0x7f.1, 2130706433) as getaddrinfo will.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _forbidden_kind(address: Address) -> str | None:
    """What kind of non-public address this is; None for a public unicast address."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        return _forbidden_kind(embedded)
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Where outbound calls may go. The default is the strictest: production, nothing allow-listed."""

    development: bool = False
    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """From ``BROKER_ENV`` and ``BROKER_EGRESS_ALLOW`` (comma-separated networks, addresses and host names)."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for item in (part.strip() for part in settings.egress_allow.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(item):
                raise ValueError(f"BROKER_EGRESS_ALLOW: {item!r} is neither a network, an address nor a host name")
            hosts.add(item.lower().rstrip("."))
        return cls(settings.env == "development", tuple(networks), frozenset(hosts))

    def check_url(self, url: str) -> Destination:
        """Everything that can be judged without DNS; raises :class:`EgressRefused`."""
        target = destination(url)
        address = named_address(target.host)
        if target.scheme == "http" and not (self.development and address is not None and address.is_loopback):
            raise EgressRefused(
                "egress.https_required", "Outbound calls use https (plain http only to loopback, in development)."
            )
        if address is not None:
            self.check_address(target.host, address)
        return target

    def check_address(self, host: str, address: Address) -> None:
        """Refuse a non-public address unless the allow-list names it (its network) or its host."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        named = host.lower().rstrip(".") in self.allowed_hosts
        if named or any(address in network for network in self.allowed_networks):
            return
        kind = _forbidden_kind(address)
        if kind is not None:
            raise EgressRefused(
                "egress.address_not_allowed",
                f"{host} is at a {kind} address ({address}); the broker calls only public addresses "
                "unless BROKER_EGRESS_ALLOW names them.",
            )

    def check_resolved(self, host: str, addresses: Sequence[Address]) -> None:
        """Every address a name resolves to must pass: one forbidden answer refuses the name."""
        if not addresses:
            raise EgressRefused("egress.unresolved", f"{host} resolves to no address.")
        for address in addresses:
            self.check_address(host, address)


# The default wherever no settings are at hand: production, nothing allow-listed.
STRICT = EgressPolicy()


# --- resolving and connecting -------------------------------------------------------------


def _unique(found: Iterable[str]) -> list[Address]:
    addresses: list[Address] = []
    for text in found:
        address = ipaddress.ip_address(text.partition("%")[0])  # without an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return addresses


async def resolve(host: str, port: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(str(info[4][0]) for info in infos)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, checks every address, connects only to a checked one (TLS still names the host)."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        self._policy.check_resolved(host, addresses)
        failure: Exception = httpcore.ConnectError(f"no address of {host} accepted a connection")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _refused(refusal: EgressRefused, request: httpx.Request) -> DestinationRefused:
    return DestinationRefused(refusal.reason, refusal.detail, request=request)


def _ssl_context(verify: ssl.SSLContext | str | bool, cert: Any) -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=verify, cert=cert, trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with every request checked and every connection opened by the guarded backend.

    Both outbound clients of the broker are async (the push transport, the callback sender):
    their event loops cut a call off at its deadline wherever it is.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        resolver: Resolver = resolve,
    ) -> None:
        limits = limits or httpx.Limits()
        context = _ssl_context(verify, cert)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx takes no network backend of its own, so the pool is made again with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver),
        )
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self._policy.check_url(str(request.url))
            return await super().handle_async_request(request)
        except EgressRefused as refusal:
            raise _refused(refusal, request) from None


def push_transport(policy: EgressPolicy) -> Callable[[httpx.Limits, dict[str, Any]], httpx.AsyncBaseTransport]:
    """The transport factory ``adapters.http_push.PushTransport`` takes: its limits and TLS options, guarded."""

    def build(limits: httpx.Limits, tls: dict[str, Any]) -> httpx.AsyncBaseTransport:
        return GuardedTransport(policy, limits=limits, **tls)

    return build
