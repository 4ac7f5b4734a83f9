#!/usr/bin/env bash
# Make sure the images docker-compose.yml and the Dockerfile name exist in the local engine:
# pull each, and when that fails (no registry reachable), build a stand-in from Debian
# packages under the same name, so the project's own files run unchanged.
#
#   bash scripts/standins/build.sh CACHE_DIR
#
# CACHE_DIR keeps the pip wheelhouse; the engine's image store keeps the images, so a
# second run does nothing. Stand-ins carry the label postbox.standin=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${1:?usage: build.sh CACHE_DIR}
mkdir -p "$cache"
mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
BASE=postbox-standin/bookworm:base

log() { printf '[standins %s] %s\n' "$(date +%T)" "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

base_image() {
    have "$BASE" && return
    command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap
    local rootfs
    rootfs=$(mktemp -d)
    log "debootstrap bookworm from $mirror (about a minute)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$rootfs"
}

wheelhouse() {
    local pip=("$root/.venv/bin/pip")
    [[ -x ${pip[0]} ]] || pip=(python3 -m pip)
    if [[ ! -f $cache/wheels/.done || $root/requirements.txt -nt $cache/wheels/.done ]]; then
        log "pip download -r requirements.txt (wheelhouse for offline pip in the build)"
        # Debian's python is 3.11.2: redis needs async-timeout below 3.11.3, which pip on a
        # newer host python leaves out. setuptools builds the project itself.
        "${pip[@]}" download -q -r "$root/requirements.txt" 'setuptools>=68' wheel \
            'async-timeout>=4.0.3' -d "$cache/wheels" 2>"$cache/pip.log" \
            || { cat "$cache/pip.log" >&2; exit 1; }
        touch "$cache/wheels/.done"
    fi
}

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null; }

# standin NAME DOCKERFILE [STAMP]: pull NAME, or build the stand-in from DOCKERFILE. A
# stand-in stamped otherwise (the python one: its wheelhouse is requirements.txt's) is
# built again.
standin() {
    local name=$1 dockerfile=$2 stamp=${3:-} context
    if have "$name"; then
        [[ $(label "$name" postbox.standin) != 1 || $(label "$name" postbox.stamp) == "$stamp" ]] && return
        log "$name: stand-in out of date (requirements.txt changed); building it again"
    elif timeout 60 docker pull -q "$name" >/dev/null 2>&1; then
        log "pulled $name"
        return
    fi
    base_image
    log "building a stand-in for $name ($dockerfile)"
    context=$(mktemp -d)
    cp "$here"/* "$context/"
    if [[ $dockerfile == python.Dockerfile ]]; then
        wheelhouse
        cp -r "$cache/wheels" "$context/wheels"
    fi
    DOCKER_BUILDKIT=0 docker build -q --label postbox.standin=1 --label "postbox.stamp=$stamp" -t "$name" \
        -f "$context/$dockerfile" "$context" >/dev/null
    rm -rf "$context"
}

python_image=$(awk '/^FROM / {print $2; exit}' "$root/Dockerfile")
standin "$python_image" python.Dockerfile "$(sha256sum "$root/requirements.txt" | cut -c1-16)"
compose_image() { awk -v s="  $1:" '$0 == s {f = 1} f && /image:/ {print $2; exit}' \
    "$root/docker-compose.yml"; }
standin "$(compose_image redis)" redis.Dockerfile
standin "$(compose_image lb)" nginx.Dockerfile
standin "$(compose_image mailpit)" mailpit.Dockerfile
standin "$(compose_image postgres)" postgres.Dockerfile
