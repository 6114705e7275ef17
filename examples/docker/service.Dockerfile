# Scenario C: the service (examples/service.rs), which registers with the registry at start
# and deregisters on SIGTERM before it stops serving.
#
#   docker run -d --name service --network demo -e REGISTRY=registry:8500 grace-service
#
# Or let grace deregister it before the stop signal is even forwarded (--pre-stop; grace
# waits for the command, at most GRACE_PRE_STOP_TIMEOUT, default 5s):
#
#   docker run -d --name service --network demo -e GRACE_PRE_STOP="/service deregister" \
#       grace-service
#
# Build it as examples/docker/http_server.Dockerfile says (grace image first).
ARG GRACE_IMAGE=grace
FROM ${GRACE_IMAGE} AS grace

FROM scratch
COPY --from=grace /grace /grace
COPY service /service
ENV REGISTRY=registry:8500
EXPOSE 8080
ENTRYPOINT ["/grace", "--"]
CMD ["/service"]
