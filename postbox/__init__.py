"""Postbox: a self-hosted email delivery service (HTTP API -> BullMQ on Redis -> SMTP)."""

__version__ = "0.1.0"
