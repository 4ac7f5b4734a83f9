# Stand-in for nginx:1.28-alpine: Debian's nginx (1.22); deploy/nginx.conf works on both.
FROM postbox-standin/bookworm:base
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
