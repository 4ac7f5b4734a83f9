"""One Lua script call as a value, so it can run now or ride in another call's round trip.

A worker's send journal must reach Redis with the job's completion; carrying it as a
`ScriptCall` lets the consumer send both in one transaction instead of two round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript


@dataclass(frozen=True)
class ScriptCall:
    """A registered script with its keys and arguments."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Any]

    async def run(self) -> Any:
        """Call the script on its own client (loading it first if Redis lost it)."""
        return await self.script(keys=self.keys, args=self.args)

    def queue(self, pipe: Pipeline) -> None:
        """Add the call to `pipe` by its SHA alone.

        Not through the script object: redis-py then checks `SCRIPT EXISTS` before every
        `execute`, an extra round trip. A pipeline result that is a `NoScriptError` (Redis
        restarted and lost its scripts) is redone with `run`.
        """
        pipe.evalsha(self.script.sha, len(self.keys), *self.keys, *self.args)
