"""Webhooks: endpoints (their store, secrets and URL rules) and the delivery of events to them."""
