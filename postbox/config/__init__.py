"""Configuration: every setting comes from the environment, read once by `load_settings`."""

from postbox.config.settings import (
    ApiSettings,
    RedisSettings,
    Settings,
    SmtpSecurity,
    SmtpSettings,
    WorkerSettings,
    key_digest,
    load_settings,
)

__all__ = [
    "ApiSettings",
    "RedisSettings",
    "Settings",
    "SmtpSecurity",
    "SmtpSettings",
    "WorkerSettings",
    "key_digest",
    "load_settings",
]
