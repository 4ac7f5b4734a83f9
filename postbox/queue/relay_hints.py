"""What to check when a worker cannot use its relay, read from the error it got.

A relay that cannot be reached fails in a few ways that each point at a different setting:
nothing listening (the host or port is wrong, or the relay is not running), a host name that
does not resolve (a typo, or a container on another network), connections that time out (a
firewall, or a relay that expects TLS from the first byte), TLS that cannot be agreed on
(SMTP_SECURITY against the port, or SMTP_CA_FILE), a refused login. The worker's log, the
queue stats' advice and the dead letters of class `config` all carry the error text made by
postbox/workers/failures.py from aiosmtplib's and the OS's messages; this module matches
that text, so the hint is the same wherever the error shows.
"""

from __future__ import annotations

# (words any of which marks the kind, what to check), first match wins; lower case.
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("authentication",),
        "Check the user and password (SMTP_USERNAME and SMTP_PASSWORD, or those in the "
        "relay's URL in SMTP_RELAYS).",
    ),
    (
        ("connection refused", "errno 111"),
        "Nothing accepts connections at {address}: check the host and port (SMTP_HOST and "
        "SMTP_PORT, or the relay's URL in SMTP_RELAYS) and that the relay is running.",
    ),
    (
        (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no address associated",
            "getaddrinfo",
        ),
        "The relay's host name does not resolve: check its spelling (SMTP_HOST, or the "
        "relay's URL in SMTP_RELAYS) and the DNS the workers use (in containers: that the "
        "relay's service is on the worker's network).",
    ),
    (
        ("network is unreachable", "no route to host"),
        "The network has no route to {address}: check the workers' network and firewall.",
    ),
    (
        ("tls", "ssl", "certificate", "starttls"),
        "Check SMTP_SECURITY against the relay's port (tls: TLS from the first byte, "
        "usually 465; starttls: plain then STARTTLS, usually 587; none: plain, 25) and, for "
        "a private CA, SMTP_CA_FILE.",
    ),
    (
        ("timed out", "timeout"),
        "Connections to {address} time out: a firewall dropping the port, a wrong port, a "
        "relay that expects TLS from the first byte (SMTP_SECURITY=tls), or an overloaded "
        "relay (SMTP_TIMEOUT_SECONDS bounds each wait).",
    ),
)
_DEFAULT = "Check the relay and the network to it."


def what_to_check(error: str | None, address: str | None = None) -> str:
    """One or two sentences on what to check for this relay error (`address`: host:port)."""
    text = (error or "").lower()
    for words, hint in _HINTS:
        if any(word in text for word in words):
            return hint.format(address=address or "the relay")
    return _DEFAULT
