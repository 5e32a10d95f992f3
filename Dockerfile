# syntax=docker/dockerfile:1
# Tickline's container image: `tickline` built with cargo, run on distroless/cc (glibc and
# libgcc, no shell, no package manager) as a non-root user. The image holds the binary and
# nothing else; it writes nothing to its own filesystem, so it runs with a read-only root
# (`docker run --read-only`, `readOnlyRootFilesystem: true`): the order journal, the control
# socket and the API key live on mounted volumes (deploy/kubernetes/base/statefulset.yaml).
#
#   docker build -t tickline:0.1.0 .
#   docker run --rm --read-only tickline:0.1.0 demo --events 20000 --io-cpu -1 --core-cpu -1

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches speed up rebuilds (BuildKit); the binary is copied out of the
# cached target directory so that the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tools --bin tickline \
    && install -D -m 0755 target/release/tickline /out/tickline

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tickline /usr/local/bin/tickline
# A numeric user, so the kubelet can check `runAsNonRoot` without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/tickline"]
CMD ["demo"]
