"""bench/relay.py, the realistic relay of the benchmark's relay rows, answers as it says:
the same recipients refused for every sender, greylisted ones accepted on their second try,
each accepted message 30 ms late, and its counts right (the rows' "relay took" is them)."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest

from bench import relay
from bench.relay import RealisticRelay


def _addresses(verdict: str | None, count: int) -> list[str]:
    found = (f"rcpt{n}@example.org" for n in range(100_000))
    return [a for a in found if relay.refusal(a) == verdict][:count]


@pytest.mark.timeout(60)
def test_relay_greylists_once_refuses_for_good_and_delays_each_message(tmp_path: Path) -> None:
    server = RealisticRelay(tmp_path, "relay")
    server.start()
    try:
        [deferred] = _addresses("defer", 1)
        [rejected] = _addresses("reject", 1)
        fine = _addresses(None, 5)
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("pipelining")
            started = time.monotonic()
            for address in fine:
                assert client.sendmail("b@example.com", [address], "Subject: x\r\n\r\n.\r\n") == {}
            assert time.monotonic() - started >= len(fine) * relay.DELAY_MS / 1000
            with pytest.raises(smtplib.SMTPRecipientsRefused) as first:
                client.sendmail("b@example.com", [deferred], "x")
            assert first.value.recipients[deferred][0] == 450
            assert client.sendmail("b@example.com", [deferred], "x") == {}
            for _ in range(2):
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    client.sendmail("b@example.com", [rejected], "x")
                assert refused.value.recipients[rejected][0] == 550
        counts = server.counts()
        assert counts["accepted"] == len(fine) + 1
        assert (counts["deferred"], counts["rejected"]) == (1, 2)
        assert counts["max_open"] == 1
    finally:
        server.stop()


def test_about_four_percent_of_recipients_are_refused() -> None:
    verdicts = [relay.refusal(f"rcpt{n}@example.org") for n in range(20_000)]
    assert 0.025 < verdicts.count("defer") / len(verdicts) < 0.035
    assert 0.007 < verdicts.count("reject") / len(verdicts) < 0.013
