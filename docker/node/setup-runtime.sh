#!/bin/sh
# Runtime layout of the filegrid/node image, shared by docker/node/Dockerfile (local Debian base)
# and docker/Dockerfile (public base images), so both images look the same inside.
set -eu

export DEBIAN_FRONTEND=noninteractive
apt-get update
# tini runs as PID 1 so signals reach the node and exited children are reaped. openssl makes
# the compose stack's CA and certificates (init-secrets.sh), a cluster container's own
# certificate (entrypoint.sh), and lets the health check speak TLS (healthcheck.sh). curl is
# for people debugging from inside a pod or container (`curl -T`, and S3 calls with
# `--aws-sigv4`); the Kubernetes e2e suite uses it for both.
apt-get install -y --no-install-recommends tini openssl curl
rm -rf /var/lib/apt/lists/*

groupadd --system --gid 10001 filegrid
useradd --system --uid 10001 --gid filegrid --home-dir /var/lib/filegrid --no-create-home \
    --shell /usr/sbin/nologin filegrid
mkdir -p /app /etc/filegrid /var/lib/filegrid
chown filegrid:filegrid /var/lib/filegrid
chmod 0750 /var/lib/filegrid
