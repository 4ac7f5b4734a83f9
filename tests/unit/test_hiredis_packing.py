"""The hiredis-packing connections put the same bytes on the wire as redis-py's own."""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from redis.exceptions import DataError

from postbox.queue._engine.hiredis_packing import (
    HiredisConnection,
    HiredisSSLConnection,
    HiredisUnixConnection,
    pack_with_hiredis,
)

COMMANDS = [
    ("EVALSHA", "f" * 40, 2, "bull:email:wait", "bull:email:em_1", 0.1, 1732939200.123456),
    ("HSET", "k", "a:ünï@example.com", b"\x00\xff\r\n", "n", 12345678901234, "f", -1.5e-07),
    ("SCRIPT EXISTS", "a" * 40),
    (b"CLIENT SETNAME", "w:1"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_packs_the_same_bytes_as_redis_py(command: tuple[object, ...]) -> None:
    ours = HiredisConnection(decode_responses=True)
    theirs = redis.Connection(decode_responses=True)
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
    assert b"".join(ours.pack_commands([command, command])) == b"".join(
        theirs.pack_commands([command, command])
    )


@pytest.mark.parametrize("value", [True, None, object()])
def test_refuses_what_redis_py_refuses(value: object) -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "k", value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", HiredisConnection),
        ("rediss://127.0.0.1:6379/0", HiredisSSLConnection),
        ("unix:///tmp/redis.sock", HiredisUnixConnection),
    ],
)
def test_keeps_the_connection_kind_the_url_chose(url: str, expected: type) -> None:
    pool = pack_with_hiredis(redis.ConnectionPool.from_url(url))
    assert pool.connection_class is expected
    assert issubclass(expected, type(redis.ConnectionPool.from_url(url).make_connection()))
