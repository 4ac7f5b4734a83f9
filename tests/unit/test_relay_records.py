"""A sent email's compact record names the relay that accepted it, except the default relay,
whose records keep their 44 bytes."""

from __future__ import annotations

from postbox.queue.records import claim_value, parse_record, sent_suffix

CLAIM = claim_value("ab" * 32)
FINISHED = "t1x2y3"  # Unix seconds in base 36, as Redis' clock gives them


def _record(relay: str | None) -> str:
    head, tail = sent_suffix(1, 0, "2.0.0 Ok: queued", relay)
    return CLAIM + head + FINISHED + tail


def test_a_named_relay_is_kept_and_read_back():
    record = parse_record(_record("backup"))
    assert record is not None
    assert (record.relay, record.reply_code, record.attempts) == ("backup", "2.0.0", 1)


def test_the_default_relay_is_implied_and_the_record_stays_inline():
    for relay in (None, "default"):
        value = _record(relay)
        assert len(value) <= 44
        record = parse_record(value)
        assert record is not None
        assert record.relay == "default"
