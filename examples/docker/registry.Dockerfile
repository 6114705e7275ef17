# Scenario C: the registry (examples/registry.rs). Run it as `registry` on a network of yours;
# examples/docker/service.Dockerfile is the service that registers with it.
#
#   docker network create demo
#   docker run -d --name registry --network demo grace-registry
#
# Build it as examples/docker/http_server.Dockerfile says (grace image first).
ARG GRACE_IMAGE=grace
FROM ${GRACE_IMAGE} AS grace

FROM scratch
COPY --from=grace /grace /grace
COPY registry /registry
EXPOSE 8500
ENTRYPOINT ["/grace", "--"]
CMD ["/registry"]
