# syntax=docker/dockerfile:1
# brief on the CPU: a cargo-chef build (dependencies cached in their own layer) and a slim Debian runtime.
#   docker build -t brief .
#   docker run --rm brief models --download   # or mount a filled HF_HOME at /data/huggingface
#   docker run -p 8080:8080 -v hf:/data/huggingface -v brief:/data/brief brief

ARG RUST_VERSION=1.95.0

FROM lukemathwalker/cargo-chef:latest-rust-${RUST_VERSION}-slim-bookworm AS chef
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is rebuilt when Cargo.toml or Cargo.lock change, not when brief's code does.
RUN cargo chef cook --release --recipe-path recipe.json --bin brief
COPY . .
RUN cargo build --release --locked --bin brief

# `ldd target/release/brief` lists only libc, libm and libgcc_s, all in the base image; hub downloads use rustls
# with bundled roots (webpki-roots), so no ca-certificates or OpenSSL are needed either.
FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin brief \
    && mkdir -p /data/huggingface /data/brief \
    && chown -R brief:brief /data
COPY --from=builder /src/target/release/brief /usr/local/bin/brief

ENV HF_HOME=/data/huggingface \
    BRIEF_CACHE_DIR=/data/brief \
    BRIEF_BIND=0.0.0.0:8080 \
    BRIEF_LOG=info
VOLUME ["/data/huggingface", "/data/brief"]
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
WORKDIR /data
EXPOSE 8080
# /health is 503 while the models load (minutes on a first start without a filled cache), then 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 CMD ["brief", "health-check"]
ENTRYPOINT ["brief"]
CMD ["serve"]
