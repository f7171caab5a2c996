# syntax=docker/dockerfile:1
#
# qpq's container images: one target per service and one for the command-line client.
#
#   docker build --target gateway -t <registry>/qpq-gateway:<version> .
#   targets: gateway, auth, keypackage, delivery, ktlog, blob, cli
#
# What an image holds is decided by deploy/image/assemble.mjs, which the build stages below run:
# the production dependency closure of the target's workspace, and only the workspace sources its
# entry file imports (no tests, no test helpers, no dev tools). deploy/image/stage.test.ts builds the
# same layout without Docker and starts every image's ENTRYPOINT from it; deploy/image/README.md says
# what that does and does not check.

# Debian (glibc), not Alpine (musl): @matrixai/quic's native module and esbuild (tsx) ship glibc
# builds. Pinned by tag; a release pipeline can pass --build-arg NODE_IMAGE=node:…@sha256:… for
# byte-identical rebuilds.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- build ---------------------------------------------------------------------------------------

# The lockfile and every workspace's package.json, alone: `npm ci` below runs again only when they
# change, not on every source edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN node deploy/image/assemble.mjs manifests /manifests

# Production dependencies of the services and the CLI (npm ci --omit=dev --ignore-scripts).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /manifests/ /app/
RUN --mount=type=cache,target=/root/.npm,sharing=locked node deploy/image/assemble.mjs install

# /out/<target>: the /app of each image.
FROM deps AS build
COPY . /src/
RUN node deploy/image/assemble.mjs assemble /src /out

# ---- runtime -------------------------------------------------------------------------------------

FROM ${NODE_IMAGE} AS runtime
# Nothing runs npm, npx, corepack or yarn in a qpq container; removing them takes them and their
# bundled dependencies off what scanners and attackers find in the image.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
WORKDIR /app
# HOME=/tmp: whatever writes under ~ (the CLI's default data directory ~/.qpq) lands in /tmp, the one
# writable place of a read-only root file system; tsx keeps its compile cache in os.tmpdir(), /tmp.
#
# MALLOC_ARENA_MAX=2: glibc gives threads that allocate at the same time their own malloc arenas (up
# to 8 per core) and seldom returns their memory. libuv's thread pool (crypto, zlib, file system),
# V8's helper threads and native modules all allocate off the main thread, so resident memory grows
# well past what is in use and towards the container's limit. Two arenas keep it close to use, for
# a lock contention Node's mostly single-threaded allocation hardly notices. Compare
# qpq_process_resident_memory_bytes with qpq_nodejs_memory_bytes before changing it.
ENV NODE_ENV=production \
    HOME=/tmp \
    MALLOC_ARENA_MAX=2
# A numeric user without a passwd entry: Kubernetes' runAsNonRoot can verify it, and it owns nothing
# in the image (the code in /app belongs to root and cannot be changed by the process).
USER 10001:10001
# node runs as PID 1 without an init: the services handle SIGTERM themselves (drain, then exit), and
# their only child processes are tsx's esbuild compilers, which node waits for itself.

FROM runtime AS gateway
COPY --from=build /out/gateway/ /app/
ENV QPQ_LISTEN=0.0.0.0:7000 \
    QPQ_METRICS_LISTEN=0.0.0.0:9100
# QUIC for clients; HTTP for /healthz, /readyz, /metrics
EXPOSE 7000/udp 9100/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/gateway/src/bin.ts"]

FROM runtime AS auth
COPY --from=build /out/auth/ /app/
ENV QPQ_LISTEN=0.0.0.0:7101 \
    QPQ_METRICS_LISTEN=0.0.0.0:9101
# gRPC (mutual TLS); HTTP for /healthz, /readyz, /metrics
EXPOSE 7101/tcp 9101/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/auth/src/bin.ts"]

FROM runtime AS keypackage
COPY --from=build /out/keypackage/ /app/
ENV QPQ_LISTEN=0.0.0.0:7102 \
    QPQ_METRICS_LISTEN=0.0.0.0:9102
EXPOSE 7102/tcp 9102/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/keypackage/src/bin.ts"]

FROM runtime AS delivery
COPY --from=build /out/delivery/ /app/
ENV QPQ_LISTEN=0.0.0.0:7103 \
    QPQ_METRICS_LISTEN=0.0.0.0:9103
EXPOSE 7103/tcp 9103/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/delivery/src/bin.ts"]

FROM runtime AS ktlog
COPY --from=build /out/ktlog/ /app/
ENV QPQ_LISTEN=0.0.0.0:7104 \
    QPQ_METRICS_LISTEN=0.0.0.0:9104
EXPOSE 7104/tcp 9104/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/ktlog/src/bin.ts"]

FROM runtime AS blob
COPY --from=build /out/blob/ /app/
ENV QPQ_LISTEN=0.0.0.0:7105 \
    QPQ_METRICS_LISTEN=0.0.0.0:9105
EXPOSE 7105/tcp 9105/tcp
ENTRYPOINT ["node", "--import", "tsx", "services/blob/src/bin.ts"]

# `docker run --rm -v qpq-alice:/data -e QPQ_DATA_DIR=/data <registry>/qpq-cli --server HOST:7000 --ca /data/ca.pem recv`
FROM runtime AS cli
COPY --from=build /out/cli/ /app/
ENTRYPOINT ["node", "clients/cli/bin/qpq.mjs"]
