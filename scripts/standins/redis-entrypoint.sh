#!/bin/sh
# As the official image: a bare `redis-server ...` listens for other containers.
set -e
if [ "$1" = "redis-server" ]; then
    shift
    find /data \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@" --protected-mode no
fi
exec "$@"
