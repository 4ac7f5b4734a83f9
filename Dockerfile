# Postbox image: one image for every role; the command picks it. By default
# `postbox standalone`: API, a worker and an embedded Redis with its data in /data, so
#   docker run -p 8080:8080 -v postbox-data:/data -e API_KEYS=... -e SMTP_HOST=... postbox
# is a whole Postbox; with REDIS_URL set it uses that Redis instead. docker-compose.yml and
# k8s run `postbox serve` (the API) and `postbox worker`. Build: docker build -t postbox .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1 reaps orphaned grandchildren and passes SIGTERM on to `postbox`, which drains
# its workers. It must not run with -g: a signal to the whole group would reach each worker
# twice (from tini and from the postbox supervisor), and a second SIGTERM cancels active sends.
# redis-server (Debian's 7.0) is the standalone mode's embedded Redis; /data its directory,
# owned by the postbox user so a new named volume mounted there is too.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 postbox \
    && useradd --system --uid 10001 --gid postbox --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin postbox \
    && mkdir /data && chown 10001:10001 /data

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Install the package itself (not editable) and drop the source: `python -m postbox`, which
# the supervisor uses for its children, then finds only the installed copy.
COPY pyproject.toml README.md /src/
COPY postbox /src/postbox
RUN pip install --no-deps /src && rm -rf /src

USER 10001:10001
# JSON log lines for the container's log collector; 8080 the API, 9100 the workers' metrics
# (served when METRICS_PORT is set).
ENV LOG_FORMAT=json
EXPOSE 8080 9100

# Liveness of the API (the worker has no HTTP port: docker-compose.yml disables this check
# there). The slim image has no curl; python's urllib raises, so exits 1, on a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["postbox", "standalone"]
