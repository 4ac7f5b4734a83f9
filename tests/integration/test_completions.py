"""Completion groups against a real Redis: shared pipelines, per-group outcomes, and what a
refused write, a Redis that lost its scripts, or a Redis restart do to a completion."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as redis
import uvloop

from postbox.dev.ports import free_port
from postbox.dev.redis_server import RedisServer
from postbox.queue._engine.completions import Completions
from postbox.queue._engine.script_call import ScriptCall

WRITE = "redis.call('RPUSH', KEYS[1], ARGV[1])"
REFUSED_WRITE = "return redis.error_reply('NOPE refused')"
FINISH = "redis.call('RPUSH', KEYS[1], ARGV[1]); return tonumber(ARGV[2])"


def _groups(client: redis.Redis, count: int, write: str = WRITE) -> list[list[ScriptCall]]:
    """`count` groups: a completion answering its group's number, then a write."""
    write_script, finish = client.register_script(write), client.register_script(FINISH)
    return [
        [
            ScriptCall(finish, ["log"], [f"finish {n}", n]),
            ScriptCall(write_script, ["log"], [f"write {n}"]),
        ]
        for n in range(count)
    ]


def _run(redis_url: str, scenario: Any) -> Any:
    async def main() -> Any:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return uvloop.run(main())


def test_groups_that_come_together_share_a_transaction_and_keep_their_own_results(redis_url):
    async def scenario(client: redis.Redis) -> tuple[list[Any], list[str]]:
        completions = Completions(client)
        results = await asyncio.gather(*(completions.complete(g) for g in _groups(client, 5)))
        return results, await client.lrange("log", 0, -1)

    results, log = _run(redis_url, scenario)
    assert results == [0, 1, 2, 3, 4]
    for n in range(5):
        assert log.index(f"finish {n}") < log.index(f"write {n}")


def test_a_refused_write_does_not_undo_a_completion_that_went_through(redis_url):
    async def scenario(client: redis.Redis) -> tuple[Any, list[str]]:
        (group,) = _groups(client, 1, write=REFUSED_WRITE)
        await client.script_load(REFUSED_WRITE)
        await client.script_load(FINISH)
        return await Completions(client).complete(group), await client.lrange("log", 0, -1)

    result, log = _run(redis_url, scenario)
    assert result == 0
    assert log == ["finish 0"]


def test_scripts_redis_lost_run_again_the_completion_first(redis_url):
    async def scenario(client: redis.Redis) -> tuple[list[Any], list[str]]:
        completions = Completions(client)
        groups = _groups(client, 2)
        await completions.complete(groups[0])  # loads both scripts
        await client.script_flush()  # what a restart does
        await client.delete("log")
        return [await completions.complete(groups[1])], await client.lrange("log", 0, -1)

    results, log = _run(redis_url, scenario)
    assert results == [1]
    assert log == ["finish 1", "write 1"]


def test_a_completion_rides_out_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path / "redis", port=free_port(), password="restart-test")
    server.start()

    async def scenario(client: redis.Redis) -> Any:
        completions = Completions(client)
        (group,) = _groups(client, 1)
        server.stop()
        restart = asyncio.get_running_loop().run_in_executor(None, _start_later, server)
        result = await completions.complete(group)
        await restart
        return result

    try:
        assert _run(server.url, scenario) == 0
    finally:
        server.stop()


def _start_later(server: RedisServer) -> None:
    time.sleep(0.5)
    server.start()
