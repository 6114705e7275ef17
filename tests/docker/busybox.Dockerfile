# Test fixture: grace as PID 1 with a static busybox as /bin/sh, for programs written as shell
# scripts (signal traps, orphans, a program that ignores SIGTERM).
#
#   docker build --build-arg GRACE_IMAGE=IMG [--build-arg GRACE_TIMEOUT=2s] -f THIS CTX
#
# CTX holds `busybox` (Debian's busybox-static). An empty GRACE_TIMEOUT counts as unset.
ARG GRACE_IMAGE=grace
FROM ${GRACE_IMAGE} AS grace

FROM scratch
ARG GRACE_TIMEOUT=
COPY --from=grace /grace /grace
COPY busybox /bin/sh
ENV GRACE_TIMEOUT=${GRACE_TIMEOUT}
ENTRYPOINT ["/grace", "--"]
