#!/usr/bin/env bash
# The README's Docker sections on a real Docker engine, under load, checked step by step:
#
#   one container (postbox standalone, embedded Redis on a volume) restarted mid-queue:
#     nothing lost, nothing sent twice;
#   its Redis moved to the compose cluster: scheduled emails, dead letters and the
#     deduplication records arrive intact;
#   the cluster (3 API replicas behind nginx, 2 workers, Redis, the dev inbox): 3,000 emails
#     with 10 % re-sent, each delivered exactly once; workers scaled 2 -> 4 -> 2 under load
#     (removed ones exit 0); an API replica stopped under load (0 client errors); a worker
#     SIGKILLed (its jobs delivered by the others); Redis restarted (no 503 once back 2 s).
#
#   bash scripts/compose-test.sh          (root: it may apt-get install and start dockerd)
#
# It installs docker.io, debootstrap and Compose v2 (from trixie's docker-compose package when
# the suite has none) when missing, starts dockerd when none runs, and builds stand-ins of
# the images the project's files name when Docker Hub cannot be reached
# (scripts/standins/build.sh), so the Dockerfile and docker-compose.yml run unchanged. The
# README blocks run as they are (`run_block`), in a copy of the project. Everything it
# started is removed at the end (dockerd stopped if it started it); the stand-in images and
# the wheelhouse stay in the engine and in $CACHE, so a second run is faster.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${POSTBOX_COMPOSE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postbox-compose-test}
LIMIT_SECONDS=${POSTBOX_COMPOSE_TEST_LIMIT:-900}
export COMPOSE_PROJECT_NAME=postbox-compose-test
# Ports on the host (the README's ${POSTBOX_PORT:-8080}); off the usual ones on a dev box.
export POSTBOX_PORT=${POSTBOX_PORT:-18080} MAILPIT_PORT=${MAILPIT_PORT:-18025}
LB=http://127.0.0.1:$POSTBOX_PORT
INBOX=http://127.0.0.1:$MAILPIT_PORT
SINK=postbox-compose-test-sink
WORK=$(mktemp -d /tmp/postbox-compose-test.XXXXXX)
DOCKERD_PID=
STARTED=$(date +%s)
declare -a FIGURES=()

log() { printf '[compose-test %s +%ss] %s\n' "$(date +%T)" "$(($(date +%s) - STARTED))" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
figure() { FIGURES+=("$1"); log "figure: $1"; }

# ------------------------------------------------------------------ engine, compose, images

ensure_engine() {
    if ! command -v dockerd >/dev/null; then
        log "apt-get install docker.io"
        apt-get install -y --no-install-recommends docker.io >"$WORK/apt.log" 2>&1
    fi
    if ! docker info >/dev/null 2>&1; then
        log "starting dockerd"
        dockerd --storage-driver=overlay2 >"$CACHE/dockerd.log" 2>&1 &
        DOCKERD_PID=$!
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
        fail "dockerd did not start: $(tail -5 "$CACHE/dockerd.log")"
    fi
}

ensure_compose() {
    docker compose version >/dev/null 2>&1 && return
    local plugins=$CACHE/docker/cli-plugins lists=$CACHE/apt-trixie
    if [[ ! -x $plugins/docker-compose ]]; then
        if apt-cache policy docker-compose 2>/dev/null | grep -q 'Candidate: 2\.'; then
            apt-get install -y --no-install-recommends docker-compose >"$WORK/apt.log" 2>&1
            docker compose version >/dev/null 2>&1 && return
        fi
        log "fetching Compose v2 from trixie's docker-compose package"
        mkdir -p "$lists/lists/partial" "$plugins"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
            "http://deb.debian.org/debian trixie main" >"$lists/sources.list"
        local opts=(-o "Dir::Etc::SourceList=$lists/sources.list" -o Dir::Etc::SourceParts=/nonexistent
            -o "Dir::State::Lists=$lists/lists" -o APT::Get::List-Cleanup=0)
        apt-get "${opts[@]}" update -qq >"$WORK/apt.log" 2>&1
        (cd "$lists" && apt-get "${opts[@]}" download docker-compose >>"$WORK/apt.log" 2>&1)
        dpkg -x "$lists"/docker-compose_*.deb "$lists/x"
        cp "$lists/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugins/"
    fi
    mkdir -p "$CACHE/docker"
    export DOCKER_CONFIG=$CACHE/docker
    docker compose version >/dev/null || fail "no Compose v2"
}

# ------------------------------------------------------------------ README blocks, checks

readme_block() {
    awk -v m="<!-- scripts/compose-test.sh runs: $1 -->" '
        $0 == m {f = 1; next}
        f == 1 && /^```sh/ {f = 2; next}
        f == 2 && /^```/ {exit}
        f == 2 {print}' "$WORK/README.md"
}

# run_block NAME [LOADGEN-RUN]: the README block NAME, as it is, in its own `bash -eu`
# (`keys` in this shell: its KEY is used later), its output also in $WORK/NAME.out. With
# LOADGEN-RUN, the summary of the block's load test goes to $WORK/LOADGEN-RUN.json, and the
# block may fail because that load test's only errors were requests the API shed (503
# overloaded): load shedding on a busy machine, reported in the figures, not a failure of
# what is tested.
run_block() {
    local block status=0
    block=$(readme_block "$1")
    [[ -n $block ]] || fail "README has no block '$1'"
    log "README block '$1':"
    sed 's/^/    | /' <<<"$block" >&2
    if [[ $1 == keys ]]; then
        eval "$block"
        export KEY
        return
    fi
    bash -euo pipefail -c "$block" > >(tee "$WORK/$1.out") || status=$?
    sleep 0.2 # tee's last write
    if [[ -n ${2:-} ]]; then
        python3 - "$WORK/$1.out" "$WORK/$2.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
summary, _ = json.JSONDecoder().raw_decode(text[text.index("\n{\n") + 1 if not text.startswith("{") else 0:])
json.dump(summary, open(sys.argv[2], "w"))
PY
    fi
    ((status == 0)) && return
    [[ -n ${2:-} && -f $WORK/$2.json && $(hard_errors "$WORK/$2.json") == 0 ]] ||
        fail "README block '$1' failed (exit $status)"
}

# loadgen RUN COUNT [ARGS...]: scripts/loadgen.py through the load balancer (or $BASE);
# its JSON summary in $WORK/RUN.json. Never fails by itself: the caller checks.
loadgen() {
    local run=$1 count=$2
    shift 2
    python3 "$WORK/scripts/loadgen.py" --base-url "${BASE:-$LB}" --api-key "$KEY" \
        --count "$count" --run-id "$run" --concurrency 8 "$@" >"$WORK/$run.json" || true
}

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))' "$@"; }
# Errors other than requests the API shed under load (503 overloaded).
hard_errors() { field "$1" "errors - errors_by_kind.get('503 overloaded', 0)"; }
shed() { field "$1" "errors_by_kind.get('503 overloaded', 0)"; }

# delivered INBOX RUN: "distinct total" emails of loadgen run RUN the inbox holds.
delivered() {
    python3 - "$1" "$2" <<'PY'
import collections, json, sys, urllib.request
url, run = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url + "/api/v1/messages?start=0&limit=1000000", timeout=10) as r:
    messages = json.load(r)["messages"]
counts = collections.Counter(
    m["Subject"] for m in messages if m["Subject"].startswith(f"loadgen {run} #")
)
print(len(counts), sum(counts.values()))
PY
}

# since START: seconds (one decimal) from START (`date +%s.%N`) to now.
since() { python3 -c "import time,sys; print(round(time.time() - float(sys.argv[1]), 1))" "$1"; }

# wait_delivered INBOX RUN EXPECTED TIMEOUT: wait for EXPECTED distinct emails of RUN;
# prints "distinct total" (total counts an email sent twice twice).
wait_delivered() {
    local inbox=$1 run=$2 expected=$3 timeout=$4 start distinct total
    start=$(date +%s)
    while :; do
        read -r distinct total < <(delivered "$inbox" "$run")
        ((distinct >= expected)) && break
        (($(date +%s) - start > timeout)) && fail "$run: $distinct of $expected delivered after ${timeout}s"
        sleep 1
    done
    echo "$distinct $total"
}

# exactly_once INBOX RUN EXPECTED TIMEOUT: wait for EXPECTED distinct emails, none twice;
# prints the seconds it waited.
exactly_once() {
    local start found distinct total
    start=$(date +%s.%N)
    found=$(wait_delivered "$@") || exit 1 # errexit is off in a $(...) that calls us
    read -r distinct total <<<"$found"
    ((total == distinct)) || fail "$2: $((total - distinct)) emails delivered twice"
    ((distinct == $3)) || fail "$2: $distinct delivered, $3 accepted"
    since "$start"
}

wait_healthy() { # URL TIMEOUT
    local deadline=$(($(date +%s) + $2))
    until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/healthz', timeout=2)" "$1" 2>/dev/null; do
        (($(date +%s) < deadline)) || fail "$1 not healthy after $2 s"
        sleep 0.5
    done
}

# api METHOD PATH [JSON]: one request to ${BASE:-$LB}; prints "STATUS BODY".
api() {
    python3 - "${BASE:-$LB}" "$KEY" "$@" <<'PY'
import json, sys, urllib.error, urllib.request
base, key, method, path = sys.argv[1:5]
data = sys.argv[5].encode() if len(sys.argv) > 5 else None
request = urllib.request.Request(base + path, data=data, method=method, headers={
    "Authorization": "Bearer " + key, "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as reply:
        print(reply.status, reply.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
PY
}

set_env() { sed -i "s|^$1=.*|$1=$2|" "$WORK/.env"; }
# subject_count INBOX SUBJECT: how many emails with exactly that subject the inbox holds.
subject_count() {
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/api/v1/messages?start=0&limit=1000000", timeout=10) as r:
    print(sum(m["Subject"] == sys.argv[2] for m in json.load(r)["messages"]))
PY
}
built_image() { BUILT+=("$(docker image inspect -f '{{.Id}}' postbox:local)"); }
declare -a BUILT=()

# ------------------------------------------------------------------ cleanup

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    [[ -n ${WATCHDOG:-} ]] && kill "$WATCHDOG" 2>/dev/null || true
    if ((code != 0)) && [[ -f $WORK/docker-compose.yml ]]; then
        (cd "$WORK" && docker compose --profile dev logs --tail 30 2>&1 | tail -120) >&2 || true
        docker logs --tail 30 postbox >&2 2>&1 || true
    fi
    log "cleaning up"
    if [[ -f $WORK/docker-compose.yml ]]; then
        (cd "$WORK" && docker compose --profile dev down -v --remove-orphans -t 5 >/dev/null 2>&1) || true
    fi
    docker rm -f postbox "$SINK" >/dev/null 2>&1 || true
    docker volume rm postbox-data >/dev/null 2>&1 || true
    docker image rm postbox:local "${BUILT[@]}" >/dev/null 2>&1 || true
    if [[ -n $DOCKERD_PID ]]; then
        kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    ((code == 0)) && log "passed in $(($(date +%s) - STARTED)) s" || log "failed (exit $code)"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(sleep "$LIMIT_SECONDS" && log "over ${LIMIT_SECONDS}s: giving up" && kill -TERM $$) 2>/dev/null &
WATCHDOG=$!

# ------------------------------------------------------------------ the run

mkdir -p "$CACHE"
ensure_engine
ensure_compose
for name in postbox "$SINK"; do
    if docker container inspect "$name" >/dev/null 2>&1; then
        trap - EXIT
        fail "a container named $name exists already: this test would replace it"
    fi
done
if docker volume inspect postbox-data >/dev/null 2>&1; then
    trap - EXIT
    fail "a volume postbox-data exists already: this test would replace it"
fi
t0=$(date +%s)
bash "$ROOT/scripts/standins/build.sh" "$CACHE"
figure "base images ready in $(($(date +%s) - t0)) s"
(cd "$ROOT" && git ls-files -co --exclude-standard -z) | (cd "$ROOT" && tar -c --null -T - -f -) |
    tar -C "$WORK" -x -f -
cd "$WORK"

# One container, restarted mid-queue.
run_block keys
docker run -d --name "$SINK" "$(awk '/image: axllent/ {print $2}' docker-compose.yml)" >/dev/null
SINK_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$SINK")
set_env SMTP_HOST "$SINK_IP"
# A send rate below the intake, so that the restart finds a queue; and a longer bound on a
# request's wait in the API's accept queue than the 250 ms default, which sheds load (503
# overloaded) when the CI machine's cores are busy with other work: not what is tested here.
echo "EMAIL_RATE_LIMIT=40/second" >>.env
echo "API_MAX_QUEUE_WAIT_MS=10000" >>.env
t0=$(date +%s)
run_block single
built_image
figure "image built in $(($(date +%s) - t0)) s, $(docker image inspect -f '{{.Size}}' postbox:local | awk '{printf "%d MB", $1 / 1e6}')"
BASE=$LB wait_healthy "$LB" 60
loadgen single 1000
accepted=$(field "$WORK/single.json" accepted)
[[ $(hard_errors "$WORK/single.json") == 0 ]] || fail "single: $(cat "$WORK/single.json")"
read -r before _ < <(delivered "http://$SINK_IP:8025" single)
((before < 1000)) || fail "single: all sent before the restart; nothing to test"
run_block restart
wait_healthy "$LB" 60
waited=$(exactly_once "http://$SINK_IP:8025" single "$accepted" 120)
figure "single container: restarted with $((accepted - before)) of $accepted not yet sent; all delivered once, ${waited} s after the restart began"

# What must survive the move to the cluster: a dead letter, the dedup records, and an email
# scheduled for a minute later, which the cluster is to send (the queue cannot cancel one,
# and the load tests wait for an empty queue).
read -r status body < <(api POST /v1/emails '{"from": "a@example.com", "to": "bounce@example.org", "subject": "bounce", "text": "x"}')
dead_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$body")
for _ in $(seq 30); do [[ $(api GET /v1/dead-letters) == *"$dead_id"* ]] && break; sleep 1; done
[[ $(api GET /v1/dead-letters) == *"$dead_id"* ]] || fail "no dead letter in the single container"
later=$(python3 -c "import datetime; print((datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)).isoformat())")
read -r status body < <(api POST /v1/emails "{\"from\": \"a@example.com\", \"to\": \"b@example.org\", \"subject\": \"later\", \"text\": \"x\", \"send_at\": \"$later\"}")
[[ $status == 202 ]] || fail "scheduling: $status $body"
scheduled_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$body")

run_block migrate
[[ $(subject_count "http://$SINK_IP:8025" later) == 0 ]] || fail "the scheduled email went early"
set_env SMTP_HOST mailpit
sed -i '/^EMAIL_RATE_LIMIT=/d' .env
# The SIGKILLed worker's jobs come back after its lock, a stalled-job check and (for those
# it had in a transaction) their send marks: with the defaults (30 s, 30 s, 120 s) that step
# waited up to two minutes for nothing but those timers. Shorter ones take the same path.
printf '%s\n' EMAIL_LOCK_DURATION_MS=10000 EMAIL_STALLED_INTERVAL_MS=5000 \
    EMAIL_SEND_MARK_SECONDS=15 >>.env
t0=$(date +%s)
run_block cluster cluster
built_image
figure "cluster: up and load test in $(($(date +%s) - t0)) s: $(field "$WORK/cluster.json" "f\"{accepted} accepted, {duplicates} re-sends answered duplicate, errors {errors_by_kind or 0}, {rate_per_second} requests/s, {drain['emails_per_second']} emails/s end to end\"" 2>/dev/null || cat "$WORK/cluster.json")"
exactly_once "$INBOX" cluster "$(field "$WORK/cluster.json" accepted)" 60 >/dev/null
for _ in $(seq 60); do [[ $(subject_count "$INBOX" later) != 0 ]] && break; sleep 1; done
[[ $(subject_count "$INBOX" later) == 1 ]] || fail "the scheduled email: $(api GET "/v1/emails/$scheduled_id")"
[[ $(api GET /v1/dead-letters) == *"$dead_id"* ]] || fail "the dead letter did not survive the move"
loadgen single-again 1000 --run-id single
[[ $(field "$WORK/single-again.json" "duplicates == sent and accepted == 0") == True ]] || fail "dedup records lost in the move: $(cat "$WORK/single-again.json")"
figure "moved to the cluster: the email scheduled in the container sent once by the cluster at its time, the dead letter and 1,000 dedup records intact"

# Workers scaled under load.
since=$(date +%s)
loadgen scale 3000 --wait 300 &
load=$!
sleep 3
run_block scale
wait "$load"
exits=$(docker events --since "$since" --until "$(date +%s)" --filter event=die \
    --filter "label=com.docker.compose.service=worker" --format '{{.Actor.Attributes.exitCode}}' | sort | uniq -c | xargs)
[[ $(hard_errors "$WORK/scale.json") == 0 ]] || fail "scale: client errors: $(cat "$WORK/scale.json")"
exactly_once "$INBOX" scale "$(field "$WORK/scale.json" accepted)" 60 >/dev/null
[[ -n $exits && $exits =~ ^[0-9]+\ 0$ ]] || fail "removed workers' exit codes (count code): '$exits'"
figure "workers 2 -> 4 -> 2 under load: every accepted email once, 0 client errors ($(shed "$WORK/scale.json") shed as overloaded), removed workers' exit codes (count code): $exits"

# An API replica stopped under load.
loadgen stop-api 2000 --wait 300 &
load=$!
sleep 2
run_block stop-api
wait "$load"
[[ $(hard_errors "$WORK/stop-api.json") == 0 ]] || fail "stop-api: client errors: $(cat "$WORK/stop-api.json")"
exactly_once "$INBOX" stop-api "$(field "$WORK/stop-api.json" accepted)" 60 >/dev/null
figure "an API replica stopped under load: 0 of 2,000 requests failed, $(shed "$WORK/stop-api.json") shed as overloaded ($(field "$WORK/stop-api.json" rate_per_second) requests/s)"

# A worker SIGKILLed mid-load: its locked jobs come back after the lock and a stall check.
loadgen kill-worker 2000 &
load=$!
sleep 8
killed_at=$(date +%s.%N) # the block's first command kills
run_block kill-worker
wait "$load"
accepted=$(field "$WORK/kill-worker.json" accepted)
# Some of the killed worker's emails may go twice (the crash window between the relay's 250
# and the journal write, README Guarantees): counted, not a failure; none may be lost.
found=$(wait_delivered "$INBOX" kill-worker "$accepted" 180)
waited=$(since "$killed_at")
read -r distinct total <<<"$found"
((distinct == accepted)) || fail "kill-worker: $distinct delivered, $accepted accepted"
((total == distinct)) || figure "kill-worker: $((total - distinct)) sent twice (the crash window, README Guarantees)"
figure "a worker SIGKILLed: all $accepted emails delivered by the others, the last ${waited} s after the kill"

# Redis restarted: no 503 once it has been back (answering, its file loaded) for 2 s.
run_block restart-redis
t0=$(date +%s.%N)
until [[ $(docker compose exec -T redis redis-cli ping 2>/dev/null) == PONG ]]; do sleep 0.2; done
figure "Redis answered again $(since "$t0") s after docker compose restart returned"
sleep 2
loadgen after-redis 500 --wait 120
[[ $(field "$WORK/after-redis.json" "errors_by_kind.get('503 queue_unavailable', 0) + errors - errors_by_kind.get('503 overloaded', 0)") == 0 ]] || fail "after the Redis restart: $(cat "$WORK/after-redis.json")"
exactly_once "$INBOX" after-redis 500 60 >/dev/null
figure "Redis restarted: no 503 unavailable and no other error in 500 requests from 2 s after it was back ($(shed "$WORK/after-redis.json") shed as overloaded)"

printf '\nFigures:\n' >&2
printf '  - %s\n' "${FIGURES[@]}" >&2
