# sesrelay as a container sidecar: `sesrelayd -f`, configured by
# SESRELAY_* and AWS_* variables, logs on stderr.  See README, "Container
# sidecar".
#
#   docker build -t sesrelay .
#   docker run --rm -p 127.0.0.1:2525:2525 \
#     -e AWS_REGION=eu-west-1 -e AWS_ACCESS_KEY_ID=AKIA... \
#     -e AWS_SECRET_ACCESS_KEY=... sesrelay

# ---- build: the Debian packages of tools/debian-packages, then
# configure, make, make install (no systemd units in a container)
FROM debian:12 AS build
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential autoconf automake pkg-config libevent-dev libssl-dev \
      libsasl2-dev libinih-dev check && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN autoreconf -fi && \
    ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
      --without-systemdsystemunitdir && \
    make -j"$(nproc)" && \
    make install DESTDIR=/out && \
    chmod 644 /out/etc/sesrelay/sesrelay.conf

# ---- run: the shared libraries only, as an unprivileged user
FROM debian:12-slim
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 \
      libssl3 libsasl2-2 libinih1 ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --uid 10025 --user-group --home-dir /var/spool/sesrelay \
      --shell /usr/sbin/nologin sesrelay && \
    install -d -o sesrelay -g sesrelay -m 700 /var/spool/sesrelay
COPY --from=build /out/ /

# The sample configuration has every key commented out: the environment
# configures the relay.  Passthrough needs no disk; for spool mode set
# SESRELAY_RELAY_MODE=spool and mount a volume on /var/spool/sesrelay.
# Clients must be in SESRELAY_RELAY_ALLOW (default: loopback only, which
# is right for a sidecar sharing the application's network namespace).
ENV SESRELAY_RELAY_LISTEN=0.0.0.0:2525 \
    SESRELAY_RELAY_MODE=passthrough \
    SESRELAY_RELAY_SPOOL_DIR=/var/spool/sesrelay \
    SESRELAY_RELAY_LOG_FORMAT=json
VOLUME /var/spool/sesrelay
USER sesrelay
EXPOSE 2525
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/sesrelayd", "-f"]
