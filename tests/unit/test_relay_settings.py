"""SMTP_RELAYS: named, ordered relays from URLs; the old SMTP_* settings as relay `default`;
conflicts and bad values are configuration errors that name the variable and the relay and
never show a password."""

from __future__ import annotations

import pytest

from postbox.config import SmtpSecurity, load_settings
from postbox.config.relays import configured_relays
from postbox.errors import ConfigError

PRIMARY = "primary=smtp+starttls://user:s3cr%40t@smtp.primary.example:2587?pool=16&timeout=5"
BACKUP = "backup=smtps://bk:pw2@smtp.backup.example?rate_limit=50/second"


def test_relays_keep_their_order_names_and_settings():
    settings = load_settings({"SMTP_RELAYS": f"{PRIMARY}, {BACKUP}", "SMTP_POOL_SIZE": "3"})
    primary, backup = settings.relays

    assert (primary.name, primary.address) == ("primary", "smtp.primary.example:2587")
    assert primary.smtp.security is SmtpSecurity.STARTTLS
    assert (primary.smtp.username, primary.smtp.password) == ("user", "s3cr@t")
    assert (primary.smtp.pool_size, primary.smtp.timeout_seconds) == (16, 5.0)
    assert primary.rate_limit is None
    assert (backup.name, backup.address) == ("backup", "smtp.backup.example:465")
    assert backup.smtp.security is SmtpSecurity.TLS
    assert backup.smtp.pool_size == 3  # SMTP_POOL_SIZE is the default
    assert str(backup.rate_limit) == "50/second"
    assert "s3cr@t" not in repr(settings) and "pw2" not in repr(settings)


def test_plain_smtp_takes_smtp_security_and_its_port():
    [relay] = load_settings({"SMTP_RELAYS": "a=smtp://h", "SMTP_SECURITY": "tls"}).relays
    assert (relay.smtp.security, relay.smtp.port) == (SmtpSecurity.TLS, 465)
    [plain] = load_settings({"SMTP_RELAYS": "a=smtp://h"}).relays
    assert (plain.smtp.security, plain.smtp.port) == (SmtpSecurity.NONE, 25)


def test_without_smtp_relays_the_smtp_settings_are_relay_default():
    settings = load_settings({"SMTP_HOST": "mx.example", "SMTP_PORT": "2525"})
    [relay] = settings.relays
    assert (relay.name, relay.address, relay.smtp) == ("default", "mx.example:2525", settings.smtp)
    assert configured_relays(settings) == settings.relays


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"SMTP_HOST": "x"}, "SMTP_HOST"),
        ({"SMTP_PASSWORD": "hunter2", "SMTP_PORT": "25"}, "SMTP_PORT, SMTP_PASSWORD"),
    ],
)
def test_smtp_relays_beside_the_settings_it_replaces_is_an_error_naming_them(extra, named):
    with pytest.raises(ConfigError) as raised:
        load_settings({"SMTP_RELAYS": PRIMARY, **extra})
    assert f"SMTP_RELAYS is set, so {named} must be unset" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("primary=http://user:hunter2@h", "relay 'primary': the URL must start with smtp://"),
        ("primary=smtp://user:hunter2@:25", "relay 'primary': the URL has no host name"),
        ("primary=smtp://user:hunter2@h:99999", "relay 'primary': the URL is malformed"),
        ("primary=smtp://user:hunter2@h?pool=0", "relay 'primary': pool='0' is not a positive"),
        ("primary=smtp://user:hunter2@h?poll=2", "relay 'primary': unknown option 'poll'"),
        ("primary=smtp://u:hunter2@h?rate_limit=lots", "relay 'primary': not a rate limit"),
        ("primary=smtp://u:hunter2@h?ca_file=/nope", "relay 'primary': ca_file='/nope' is not"),
        ("a=smtp://h,a=smtp://u:hunter2@g", "names relay 'a' more than once"),
        ("a=smtp://h,smtp://u:hunter2@g?pool=2", "entry 2 is not name=url"),
    ],
)
def test_bad_relay_is_an_error_naming_the_relay_never_the_password(value, problem):
    with pytest.raises(ConfigError) as raised:
        load_settings({"SMTP_RELAYS": value})
    assert problem in str(raised.value)
    assert str(raised.value).startswith("SMTP_RELAYS ")
    assert "hunter2" not in str(raised.value)


RELAYS = "primary=smtp://p,backup=smtp://b,bulk=smtp://k"


def test_routes_name_domains_senders_and_relays_in_order():
    settings = load_settings(
        {
            "SMTP_RELAYS": RELAYS,
            "SMTP_ROUTES": "gmail.com|GoogleMail.com=bulk>primary,from:news.example=bulk,"
            "*=primary>backup",
        }
    )
    gmail, news, rest = settings.routes
    assert gmail.relays == ("bulk", "primary")
    assert gmail.matches("example.com", "googlemail.com")
    assert not gmail.matches("example.com", "example.org")
    assert news.matches("news.example", "example.org")
    assert news.relays == ("bulk",)
    assert rest.matches("x.example", "y.example")


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("gmail.com=mail", "rule 1 names relay 'mail', which SMTP_RELAYS does not define"),
        ("gmail.com", "rule 1 'gmail.com' is not domain|domain=relay>relay"),
        ("*=primary,x=primary>primary", "rule 2 names a relay twice"),
        ("bad_domain!=primary", "rule 1: 'bad_domain!' is not a domain"),
    ],
)
def test_bad_route_is_an_error_naming_the_rule(routes, problem):
    with pytest.raises(ConfigError) as raised:
        load_settings({"SMTP_RELAYS": RELAYS, "SMTP_ROUTES": routes})
    assert f"SMTP_ROUTES {problem}" in str(raised.value)


def test_routes_without_smtp_relays_may_name_the_default_relay():
    [route] = load_settings({"SMTP_ROUTES": "*=default"}).routes
    assert route.relays == ("default",)
