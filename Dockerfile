# certfleet container image (docs/container.md).
#
#   docker build -t certfleet .                        # from source: the default, last stage
#   docker build -t certfleet --target runtime-prebuilt \
#       --build-arg CERTFLEET_BIN=target/release/certfleet .   # from a binary built outside
#
# The prebuilt binary must be linked against glibc <= 2.36 (Debian bookworm), as a build on
# bookworm or in rust:*-bookworm is. scripts/check-image.sh lints this file and smoke-tests the
# runtime-prebuilt stage with buildah.

# ---------------------------------------------------------------------------------------------
# Builder: compiles the release binary. Only the runtime stage uses it; a build with
# --target runtime-prebuilt skips it (BuildKit and buildah skip stages the target does not need).
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
# What cargo needs to build the binary: the manifest and lock file, the sources, the SQL the
# sources include_str!, and benches/ (Cargo.toml declares [[bench]] targets, and cargo refuses a
# manifest whose targets are missing). .dockerignore allows exactly these into the context.
COPY Cargo.toml Cargo.lock ./
COPY src/ src/
COPY migrations/ migrations/
COPY benches/ benches/
COPY crates/ crates/
# The registry and target caches survive between builds (BuildKit, buildah); the binary is
# copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin certfleet \
    && install -D -m 0755 target/release/certfleet /out/certfleet

# ---------------------------------------------------------------------------------------------
# Runtime base: everything but the binary, shared by both final stages.
FROM docker.io/library/debian:bookworm-slim AS runtime-base

# ca-certificates: the system roots for the ACME CA, the identity provider, DNS provider APIs.
# DL3008 (pin apt versions) is ignored on purpose: Debian keeps only the newest version of a
# package in a stable release, so a pinned ca-certificates version disappears with the next
# update (20230311+deb12u1 was replaced by 20250419~deb12u2) and the build breaks; the release
# (bookworm) is pinned by the base image tag instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 certfleet \
    && useradd --system --no-log-init --uid 65532 --gid 65532 \
        --home-dir /var/lib/certfleet --no-create-home --shell /usr/sbin/nologin certfleet \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/certfleet

LABEL org.opencontainers.image.title="certfleet" \
      org.opencontainers.image.description="Central ACME certificate service for a fleet" \
      org.opencontainers.image.source="https://github.com/certfleet/certfleet" \
      org.opencontainers.image.licenses="Apache-2.0"

# Container defaults. Environment variables override the config file (CERTFLEET_CONFIG or
# --config), so change these with -e / env:, not in the file.
# - the API on every interface (also the built-in default);
# - HTTP-01 on 8080: a non-root process cannot bind port 80, so publish or map 80 -> 8080
#   (docker run -p 80:8080, a Kubernetes Service port 80 targetPort 8080);
# - /metrics on every interface, where Prometheus can scrape it ("" disables it).
# storage.url is deliberately NOT set here: an image default would make storage.urlFile
# unusable ("set together with storage.url") and would silently replace a storage.url from a
# config file. The built-in default sqlite://certfleet.db is relative to the working directory,
# /var/lib/certfleet, so the database (and its generated .key) lands in the volume:
# sqlite:///var/lib/certfleet/certfleet.db.
ENV CERTFLEET_SERVER__LISTEN=0.0.0.0:8443 \
    CERTFLEET_CHALLENGES__HTTP01__LISTEN=0.0.0.0:8080 \
    CERTFLEET_SERVER__METRICS_LISTEN=0.0.0.0:9090

WORKDIR /var/lib/certfleet
VOLUME ["/var/lib/certfleet"]
EXPOSE 8443 8080 9090
USER 65532:65532

# No HEALTHCHECK: the image has no HTTP client, and orchestrators probe the service themselves
# (Kubernetes liveness GET /healthz, readiness GET /readyz on port 8443; docs/container.md).
# certfleet runs as PID 1 and stops cleanly on SIGTERM.
ENTRYPOINT ["/usr/local/bin/certfleet", "serve"]

# ---------------------------------------------------------------------------------------------
# From a binary built outside (CI, cross-builds): CERTFLEET_BIN is its path in the build context.
FROM runtime-base AS runtime-prebuilt
ARG CERTFLEET_BIN=certfleet
COPY ${CERTFLEET_BIN} /usr/local/bin/certfleet

# ---------------------------------------------------------------------------------------------
# Default: from source. Keep this stage last so a plain `docker build .` builds it.
FROM runtime-base AS runtime
COPY --from=builder /out/certfleet /usr/local/bin/certfleet
