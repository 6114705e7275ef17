# Scenario A: examples/http_server.rs with grace as PID 1.
#
#   docker build -t grace .                                           # the top-level Dockerfile
#   cargo build --release --target x86_64-unknown-linux-musl --examples
#   docker build -t grace-http -f examples/docker/http_server.Dockerfile \
#       target/x86_64-unknown-linux-musl/release/examples
#
# The build context is the folder holding the static example binary. GRACE_IMAGE names the
# image built from the top-level Dockerfile.
ARG GRACE_IMAGE=grace
FROM ${GRACE_IMAGE} AS grace

FROM scratch
COPY --from=grace /grace /grace
COPY http_server /http_server
EXPOSE 8080
ENTRYPOINT ["/grace", "--"]
CMD ["/http_server"]
