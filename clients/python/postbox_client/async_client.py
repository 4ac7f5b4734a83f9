"""`AsyncPostbox`: the asyncio client (httpx), the same calls as `Postbox`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from postbox_client import calls
from postbox_client.answers import default_headers, result, wait_before_retry
from postbox_client.errors import ApiError, TransportError
from postbox_client.retries import RetryPolicy
from postbox_client.types import (
    Accepted,
    BatchResult,
    DeadLetterPage,
    EmailStatus,
    Requeued,
    Suppression,
    SuppressionPage,
    UserReason,
    Webhook,
)

T = TypeVar("T")


class AsyncPostbox:
    """A client of one Postbox API, with one API key.

    Use it as an async context manager, or await `close()`, to release its connections. Calls that
    fail for a reason that may pass (no connection, 429, 503) are retried as `retries`
    says; every send carries an idempotency key, the same on each retry, so a retry never
    sends an email twice.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=default_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncPostbox({self.base_url!r})"  # never the key

    async def __aenter__(self) -> AsyncPostbox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    # ------------------------------------------------------------------ emails

    async def send(
        self,
        *,
        from_: str,
        to: str | Sequence[str],
        subject: str,
        text: str | None = None,
        html: str | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Accepted:
        """Send one email: its id and status (`queued`, `scheduled`, or a duplicate's).

        `fields` are the API's other fields (`cc`, `bcc`, `reply_to`, `headers`,
        `attachments`, `tags`, `send_at`); `send_at` may be an aware `datetime`, and an
        attachment's `content` bytes (sent in base64). Without `idempotency_key` the call
        makes one; pass your own (an order id, say) to make repeated calls for one email
        safe too.
        """
        payload = calls.email_payload(
            from_=from_, to=to, subject=subject, text=text, html=html, fields=fields
        )
        return await self._run(calls.send(payload, idempotency_key))

    async def send_batch(self, emails: Sequence[Mapping[str, Any]]) -> list[BatchResult]:
        """Send up to 500 emails (each a dict of the API's fields, `from` spelt so); one
        result per email, in order."""
        return await self._run(calls.send_batch(emails))

    async def get(self, email_id: str) -> EmailStatus:
        """One email's status, attempts, last error and the relay's replies."""
        return await self._run(calls.get_email(email_id))

    async def search(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Emails in the history (a server with DATABASE_URL), newest first: `data` and
        `next_cursor` (pass it as `cursor` for the next page)."""
        filters: dict[str, Any] = {"to": to, "from": from_, "status": status, "tag": tag}
        filters |= {"since": since, "until": until, "cursor": cursor, "limit": limit}
        return await self._run(calls.search_emails(filters))

    async def cancel(self, email_id: str) -> dict[str, Any]:
        """Cancel an email no worker has taken yet (queued, scheduled or retrying)."""
        return await self._run(calls.cancel(email_id))

    async def reschedule(self, email_id: str, send_at: datetime | str | None) -> dict[str, Any]:
        """Move a queued or scheduled email to `send_at` (None: now)."""
        return await self._run(calls.reschedule(email_id, send_at))

    async def erase_history(self, to: str) -> int:
        """Erase the history records of every email to `to` (privacy requests): how many."""
        return await self._run(calls.erase_history(to))

    async def queue_stats(self) -> dict[str, Any]:
        """The queue's counts, throughput, processes and advice."""
        return await self._run(calls.queue_stats())

    # ------------------------------------------------------------ dead letters

    async def dead_letters(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int | None = None,
        error_class: str | None = None,
    ) -> DeadLetterPage:
        """One page of failed emails, newest first."""
        return await self._run(calls.dead_letters(limit, cursor, offset, error_class))

    async def retry_dead_letter(self, email_id: str) -> Requeued:
        """Requeue one dead letter with a full attempt budget."""
        return await self._run(calls.retry_dead_letter(email_id))

    async def retry_dead_letters(self, *, error_class: str | None = None) -> int:
        """Requeue every dead letter (or those of one error class): how many."""
        return await self._run(calls.retry_dead_letters(error_class))

    async def discard_dead_letter(self, email_id: str) -> None:
        """Discard one dead letter for good."""
        await self._run(calls.discard_dead_letter(email_id))

    # ------------------------------------------------------------ suppressions

    async def suppressions(
        self,
        *,
        reason: str | None = None,
        address: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SuppressionPage:
        """One page of the suppression list in address order (a key restricted to sender
        domains sees only their entries), filtered by `reason` or `address`."""
        return await self._run(calls.suppressions(limit, cursor, reason, address))

    async def suppress(
        self, address: str, *, reason: UserReason = "manual", note: str | None = None
    ) -> list[Suppression]:
        """Stop sending to `address` (`reason` `manual` or `unsubscribe`): its entries in the
        key's scope, whether new or there already."""
        return await self._run(calls.suppress(address, reason, note))

    async def unsuppress(self, address: str) -> None:
        """Send to `address` again (its entries in the key's scope removed); `NotFound` when
        it was not suppressed."""
        await self._run(calls.unsuppress(address))

    # ---------------------------------------------------------------- webhooks

    async def create_webhook(
        self, url: str, events: Sequence[str] = ("*",), *, description: str | None = None
    ) -> Webhook:
        """Make a webhook endpoint; the answer holds its signing `secret`, shown only here."""
        return await self._run(calls.create_webhook(url, events, description))

    async def list_webhooks(self) -> list[Webhook]:
        """The endpoints this key may see."""
        return await self._run(calls.list_webhooks())

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """One endpoint (never its secret)."""
        return await self._run(calls.get_webhook(webhook_id))

    async def update_webhook(self, webhook_id: str, **changes: Any) -> Webhook:
        """Change `url`, `events`, `description` or `enabled`."""
        return await self._run(calls.update_webhook(webhook_id, changes))

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete an endpoint and the deliveries still waiting for it."""
        await self._run(calls.delete_webhook(webhook_id))

    async def rotate_webhook_secret(self, webhook_id: str) -> dict[str, Any]:
        """A new secret, shown once; the old one signs beside it for 24 hours."""
        return await self._run(calls.rotate_webhook_secret(webhook_id))

    async def webhook_deliveries(
        self,
        webhook_id: str,
        *,
        state: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """Recent delivery attempts (`data`), or the `failed` or `pending` deliveries."""
        return await self._run(calls.webhook_deliveries(webhook_id, state, limit, offset))

    async def retry_webhook_delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """Make a failed or pending delivery due now."""
        return await self._run(calls.retry_webhook_delivery(webhook_id, delivery_id))

    async def replay_webhook(self, webhook_id: str, since: str, until: str) -> dict[str, Any]:
        """Deliver again the events between `since` and `until` (ISO 8601 with a zone)."""
        return await self._run(calls.replay_webhook(webhook_id, since, until))

    async def send_test_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Send a signed `webhook.test` event to the endpoint."""
        return await self._run(calls.send_test_event(webhook_id))

    # ---------------------------------------------------------------- plumbing

    async def _run(self, call: calls.Call[T]) -> T:
        retry, lost = 0, False  # lost: an earlier try may have reached the server
        while True:
            failure: ApiError | httpx.TransportError
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
                return result(call, response, lost)
            except ApiError as error:
                failure = error
            except httpx.TransportError as error:
                failure, lost = error, True
            wait = wait_before_retry(self.retries, call, retry, failure)
            if wait is None:
                if isinstance(failure, ApiError):
                    raise failure
                raise TransportError(f"{call.method} {call.path}: {failure!r}") from failure
            await asyncio.sleep(wait)
            retry += 1
