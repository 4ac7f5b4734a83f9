"""Amazon SES notifications (Bounce, Complaint, Delivery) as the reports the listener reads.

The email and recipient come, as for a DSN, from the VERP token: SES gives the envelope
sender as `mail.source`, which is the transaction's `bounces+<token>@BOUNCE_DOMAIN`.
"""

from __future__ import annotations

from typing import Any

from postbox.bounces.reports import RecipientReport, Report
from postbox.suppressions.status_codes import enhanced_code


def ses_report(notification: dict[str, Any]) -> Report | None:
    """The report in an SES notification; None for a Delivery or anything else."""
    kind = notification.get("notificationType") or notification.get("eventType")
    if kind == "Bounce":
        return _bounce(notification.get("bounce") or {})
    if kind == "Complaint":
        return _complaint(notification.get("complaint") or {})
    return None


def source(notification: dict[str, Any]) -> str:
    """The envelope sender of the email the notification is about."""
    mail = notification.get("mail") or {}
    return str(mail.get("source") or "")


def _bounce(bounce: dict[str, Any]) -> Report | None:
    permanent = bounce.get("bounceType") == "Permanent"
    found = []
    for recipient in bounce.get("bouncedRecipients") or []:
        if not isinstance(recipient, dict) or not recipient.get("emailAddress"):
            continue
        diagnostic = str(recipient.get("diagnosticCode") or bounce.get("bounceSubType") or "")
        status = enhanced_code(str(recipient.get("status") or "")) or enhanced_code(diagnostic)
        status = status or ("5.0.0" if permanent else "4.0.0")
        if not permanent and status.startswith("5"):
            status = "4" + status[1:]  # SES says Transient: it is not giving up
        action = "failed" if permanent else "delayed"
        found.append(RecipientReport(str(recipient["emailAddress"]), status, action, diagnostic))
    return Report("bounce", found) if found else None


def _complaint(complaint: dict[str, Any]) -> Report | None:
    kind = str(complaint.get("complaintFeedbackType") or "abuse")
    found = [
        RecipientReport(str(r["emailAddress"]), "5.7.0", "complaint", f"feedback-type: {kind}")
        for r in complaint.get("complainedRecipients") or []
        if isinstance(r, dict) and r.get("emailAddress")
    ]
    return Report("complaint", found) if found else None
