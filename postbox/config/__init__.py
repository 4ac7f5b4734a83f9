"""Configuration: every setting comes from the environment, read once by `load_settings`."""

from postbox.config.api_keys import ApiKey, find_key, key_digest
from postbox.config.redis_cluster import ClusterSettings
from postbox.config.redis_ha import ReplicaAck, SentinelSettings
from postbox.config.settings import (
    ApiSettings,
    EmailLimits,
    RedisSettings,
    Settings,
    SmtpSecurity,
    SmtpSettings,
    WorkerSettings,
    load_settings,
)
from postbox.config.webhook_delivery import WebhookDeliverySettings
from postbox.config.webhooks import WebhookSettings

__all__ = [
    "ApiKey",
    "ApiSettings",
    "ClusterSettings",
    "EmailLimits",
    "RedisSettings",
    "ReplicaAck",
    "SentinelSettings",
    "Settings",
    "SmtpSecurity",
    "SmtpSettings",
    "WebhookDeliverySettings",
    "WebhookSettings",
    "WorkerSettings",
    "find_key",
    "key_digest",
    "load_settings",
]
