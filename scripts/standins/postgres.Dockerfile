# Stand-in for postgres:16: Debian's PostgreSQL (15), started as the official image starts
# it (a first start makes POSTGRES_USER with POSTGRES_PASSWORD and POSTGRES_DB).
FROM postbox-standin/bookworm:base
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
