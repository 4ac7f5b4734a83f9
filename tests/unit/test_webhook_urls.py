"""The SSRF rule for webhook URLs: https only, public addresses only, unless allowed."""

from __future__ import annotations

import ipaddress

import pytest

from postbox.webhooks.urls import check_url, is_forbidden_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "fec0::1",
    ],
)
def test_private_and_reserved_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://93.184.215.14/hook", "Must start with https://."),
        ("ftp://93.184.215.14/hook", "Must start with https://."),
        ("https://user:pw@93.184.215.14/hook", "Must not contain a user name or password."),
        ("https://user@93.184.215.14/hook", "Must not contain a user name or password."),
        ("https://93.184.215.14/hook#part", "Must not contain a fragment (#...)."),
        ("https://93.184.215.14/hook#", "Must not contain a fragment (#...)."),
        ("https:///hook", "Must name a host."),
        ("https://93.184.215.14:99999/", "Not a valid URL (check the host and the port)."),
        ("https://exa mple.com/", "Not a valid URL: it contains spaces or control characters."),
        ("https://" + "a" * 2050 + ".com/", "Longer than 2048 characters."),
        ("not a url", "Not a valid URL: it contains spaces or control characters."),
        ("example.com/hook", "Must start with https://."),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, problem: str) -> None:
    assert check_url(url, allow_private=False) == problem


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/hook",
        "https://[::ffff:a00:1]/hook",
        "https://10.0.0.1/hook",
        "https://localhost/hook",
    ],
)
def test_urls_reaching_private_networks_are_refused(url: str) -> None:
    problem = check_url(url, allow_private=False)
    assert problem is not None
    assert problem.startswith("Resolves to ")
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS" in problem


def test_a_public_ip_literal_over_https_is_accepted_without_dns() -> None:
    assert check_url("https://93.184.215.14/hooks/postbox?x=1", allow_private=False) is None
    assert check_url("https://[2606:4700:4700::1111]/hook", allow_private=False) is None


def test_a_name_that_does_not_resolve_is_refused() -> None:
    problem = check_url("https://no-such-host.invalid/hook", allow_private=False)
    assert problem == "The host name 'no-such-host.invalid' does not resolve."


def test_allowing_private_networks_allows_http_and_any_address() -> None:
    for url in ("http://127.0.0.1:8000/hook", "http://localhost/hook", "https://10.0.0.1/"):
        assert check_url(url, allow_private=True) is None
    assert (
        check_url("ftp://127.0.0.1/", allow_private=True) == "Must start with http:// or https://."
    )
    assert check_url("http://u:p@127.0.0.1/", allow_private=True) is not None
