# sesrelay as a container sidecar: `sesrelayd -f`, configured by SESRELAY_*
# and AWS_* variables and mounted secret files, logging JSON on stderr, as
# uid 10025, in an image with no shell.  See README, "Container sidecar".
#
# With a registry (Docker Hub's debian:12-slim):
#   docker build -t sesrelay .
# Without one (this project's CI): a Debian 12 base bootstrapped from the
# Debian mirror with the build packages already in it (tools/container-base):
#   podman build --format docker --network host \
#     --build-arg BASE="$(tools/container-base)" -t sesrelay .
# (--format docker keeps the HEALTHCHECK, which the OCI format has no field for.)
#
#   docker run --rm --network host -e SESRELAY_RELAY_LISTEN=127.0.0.1:2525 \
#     -e AWS_REGION=eu-west-1 -e SESRELAY_SES_ACCESS_KEY_ID=AKIA... \
#     -e SESRELAY_SES_SECRET_ACCESS_KEY_FILE=/run/secrets/ses \
#     -v ./ses-secret:/run/secrets/ses:ro sesrelay
#   or, with the pod's / task's IAM role (EKS IRSA or Pod Identity, ECS
#   task role, EC2 instance profile) and no key at all:
#   docker run ... -e AWS_REGION=eu-west-1 -e SESRELAY_SES_TRANSPORT=api sesrelay

ARG BASE=debian:12-slim

# ---- build: the packages of container/build-packages (installed only if
# the base lacks them), configure, make, make install, then container/rootfs
# assembles the final image's whole file system in /rootfs
FROM ${BASE} AS build
COPY container/build-packages /tmp/build-packages
RUN set -eu; \
    pkgs=$(grep -v '^#' /tmp/build-packages); missing=; \
    for p in $pkgs; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || \
        missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing && \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY . .
RUN autoreconf -fi && \
    ./configure -q --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
      --without-systemdsystemunitdir && \
    make -s -j"$(nproc)" && \
    make -s install DESTDIR=/out && \
    container/rootfs /out /rootfs && \
    /rootfs/usr/sbin/sesrelayd -V

# ---- run: nothing but the programs, the libraries they load, the CA
# bundle and the sesrelay user (uid 10025); no shell, no package manager
FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=10025:10025 /rootfs/var/spool/sesrelay/ /var/spool/sesrelay/

# The configuration file has every key commented out: the environment
# configures the relay (SPEC: SESRELAY_<SECTION>_<KEY> wins over the file).
# Passthrough needs no disk; for spool mode set SESRELAY_RELAY_MODE=spool
# and mount a volume on /var/spool/sesrelay.  Clients must be in
# SESRELAY_RELAY_ALLOW (default: loopback only, right for a sidecar that
# shares the application's network namespace).  Secrets: mount them as
# files (SESRELAY_SES_SECRET_ACCESS_KEY_FILE=/run/secrets/...).
ENV SESRELAY_RELAY_LISTEN=0.0.0.0:2525 \
    SESRELAY_RELAY_MODE=passthrough \
    SESRELAY_RELAY_SPOOL_DIR=/var/spool/sesrelay \
    SESRELAY_RELAY_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME /var/spool/sesrelay
USER 10025:10025
WORKDIR /var/spool/sesrelay
EXPOSE 2525
# SIGTERM: stop accepting, finish or spool what is in flight, exit (at most
# 40 s: give the runtime a longer stop timeout, e.g. --stop-timeout 45)
STOPSIGNAL SIGTERM
# The SMTP greeting on the first listen address, and /healthz when
# SESRELAY_RELAY_METRICS_LISTEN is set (see sesrelay(8), "health")
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["/usr/bin/sesrelay", "health"]
ENTRYPOINT ["/usr/sbin/sesrelayd", "-f"]
