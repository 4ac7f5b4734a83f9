"""Webhooks: endpoints that receive an email's delivery events, signed (Standard Webhooks).

`endpoints.py` keeps the endpoints in Redis, their signing secrets encrypted by
`secret_box.py`; `urls.py` decides which receiver URLs may be called. Delivery (signing,
the HTTP client, the per-endpoint queues and the dispatcher) lives beside them.
"""
