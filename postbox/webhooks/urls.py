"""Which receiver URLs a webhook may name: the server-side request forgery (SSRF) rule.

A webhook makes Postbox send HTTP requests wherever its URL points, from inside the network
Postbox runs in. So, unless WEBHOOK_ALLOW_PRIVATE_NETWORKS is on (development, tests), a URL
must be `https://` and its host must resolve only to public addresses: no loopback, private,
link-local (the cloud metadata service at 169.254.169.254), carrier-grade NAT, multicast or
reserved ranges, nor IPv6 forms that embed one of those. `check_url` applies the rule when an
endpoint is created or changed; the delivery client checks `is_forbidden_address` again on
every connection, since a name may resolve elsewhere later (DNS rebinding).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
RESOLVE_SECONDS = 5.0
# Threads start on first use (so after gunicorn forks); a lookup past its time keeps its
# thread until the resolver gives up, and a few such lookups cannot take more than these.
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def is_forbidden_address(ip: IPAddress) -> bool:
    """True when `ip` is not a public unicast address, or embeds (IPv4-mapped, NAT64,
    6to4, Teredo) an IPv4 address that is not."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip in _METADATA
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _CARRIER_GRADE_NAT)
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or not ip.is_global
    )


def socket_address(address: str) -> IPAddress:
    """An address as getaddrinfo gives it or a URL holds it (an IPv6 one may carry a
    `%scope`); ValueError if it is not one."""
    return ipaddress.ip_address(address.partition("%")[0])


def ascii_host(host: str) -> str:
    """The host as DNS and the Host header take it: a name's A-label (IDNA), else as is."""
    return host if host.isascii() else idna.encode(host, uts46=True).decode("ascii")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def check_url(url: str, allow_private: bool) -> str | None:
    """Why `url` may not be a webhook's receiver, or None when it may.

    Resolves the host name (blocking: call it from a thread, not an event loop) unless
    `allow_private`, since then every address is allowed.
    """
    parts, problem = _split(url)
    if parts is None:
        return problem
    problem = _shape_problem(parts, allow_private)
    if problem or allow_private:
        return problem
    host = parts.hostname or ""
    literal = _ip_literal(host)
    if literal is not None:
        return _address_problem([literal])
    try:
        addresses = _resolve(host, parts.port or 443)
    except OSError:
        return f"The host name {host!r} does not resolve."
    return _address_problem(addresses)


def _split(url: str) -> tuple[SplitResult | None, str | None]:
    if "#" in url:
        return None, "Must not contain a fragment (#...)."
    if len(url) > MAX_URL_LENGTH:
        return None, f"Longer than {MAX_URL_LENGTH} characters."
    if not url.isprintable() or any(char.isspace() for char in url):
        return None, "Not a valid URL: it contains spaces or control characters."
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return None, "Not a valid URL (check the host and the port)."
    return parts, None


def _shape_problem(parts: SplitResult, allow_private: bool) -> str | None:
    schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme.lower() not in schemes:
        allowed = "http:// or https://" if allow_private else "https://"
        return f"Must start with {allowed}."
    if not parts.hostname:
        return "Must name a host."
    if "@" in parts.netloc:
        return "Must not contain a user name or password."
    if _ip_literal(parts.hostname) is None and not _is_host_name(parts.hostname):
        return f"{parts.hostname!r} is not a valid host name."
    return None


def _is_host_name(host: str) -> bool:
    try:
        idna.encode(host, uts46=True)
    except (idna.IDNAError, UnicodeError):
        return False
    return True


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return socket_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """The host's addresses; `OSError` if it does not resolve within `RESOLVE_SECONDS`
    (getaddrinfo has no timeout of its own, and a request is waiting)."""
    lookup = _resolver.submit(socket.getaddrinfo, ascii_host(host), port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(RESOLVE_SECONDS)
    except concurrent.futures.TimeoutError:
        raise OSError("resolution timed out") from None
    return [socket_address(str(info[4][0])) for info in infos]


def _address_problem(addresses: list[IPAddress]) -> str | None:
    forbidden = sorted({str(ip) for ip in addresses if is_forbidden_address(ip)})
    if not addresses:
        return "The host name does not resolve."
    if forbidden:
        return (
            f"Resolves to {', '.join(forbidden)}: a loopback, private, link-local or reserved"
            " address (set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it)."
        )
    return None
