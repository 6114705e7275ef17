# Scenario B: examples/writer.rs with grace as PID 1, writing to a volume at /data.
#
#   docker build -t grace-writer -f examples/docker/writer.Dockerfile \
#       target/x86_64-unknown-linux-musl/release/examples
#   docker run -d --name writer -v writer-data:/data grace-writer
#
# Build it as examples/docker/http_server.Dockerfile says (grace image first).
ARG GRACE_IMAGE=grace
FROM ${GRACE_IMAGE} AS grace

FROM scratch
COPY --from=grace /grace /grace
COPY writer /writer
VOLUME /data
EXPOSE 7000
ENTRYPOINT ["/grace", "--"]
CMD ["/writer"]
