# grace as a FROM scratch image holding one file, /grace, statically linked.
#
#   docker build -t grace .
#
# Then, in your own Dockerfile, either take the binary:
#
#   COPY --from=grace /grace /grace
#   ENTRYPOINT ["/grace", "--"]
#   CMD ["/your/app", "--flag"]
#
# or start from this image (it already has the ENTRYPOINT; set CMD again).
#
# Offline (no registry to pull rust:1-alpine from): build grace on the host and replace the
# `builder` stage with an image that holds it at /grace; docs/docker.md shows how. The final
# stage below is used as it is, which is what the end-to-end tests (tests/docker.rs) do.

FROM rust:1-alpine AS builder
# The linker needs musl's C runtime files (crt1.o and friends).
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# The image's own target is <arch>-unknown-linux-musl, which links statically by default
# (crt-static), so the binary runs in an image with nothing else in it.
RUN cargo build --release --locked && cp target/release/grace /grace

FROM scratch AS grace
COPY --from=builder /grace /grace
ENTRYPOINT ["/grace", "--"]
