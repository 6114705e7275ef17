# The shell-form problem, and grace as the fix. Two targets, the same program and CMD:
#
#   docker build --target without-grace -t shell-form-bare -f examples/docker/shell_form.Dockerfile CTX
#   docker build --target with-grace    -t shell-form-grace -f examples/docker/shell_form.Dockerfile CTX
#
# CTX is a folder holding the static http_server example and a static busybox (Debian's
# busybox-static: /usr/bin/busybox), which plays /bin/sh.
#
# Shell form, `CMD prog args`, runs `/bin/sh -c "prog args"`. Here the shell stays around after
# starting the program (to report its exit status), so the shell is PID 1. PID 1 of a container
# only gets the signals it installed a handler for (pid_namespaces(7)), and the shell installed
# none for SIGTERM: `docker stop` is dropped, Docker waits its whole timeout, then SIGKILLs
# everything (exit 137) and the server never shuts down gracefully.
#
# (busybox, dash and bash all exec a lone command, `CMD /http_server`, in place of the shell,
# so that one becomes PID 1 itself; it then works only if the program handles SIGTERM, and
# nothing reaps the orphans it leaves behind.)
ARG GRACE_IMAGE=grace

FROM scratch AS without-grace
COPY busybox /bin/sh
COPY http_server /http_server
CMD /http_server; echo "http_server exited with $?"

# With grace as ENTRYPOINT the same CMD becomes `/grace -- /bin/sh -c "..."`. grace forwards
# SIGTERM to the shell, which dies of it (exit 143); grace then sends SIGTERM to what is left,
# the server, which shuts down gracefully. The container exits 143, the shell's status.
FROM ${GRACE_IMAGE} AS grace

FROM without-grace AS with-grace
COPY --from=grace /grace /grace
ENTRYPOINT ["/grace", "--"]
# Setting ENTRYPOINT clears the CMD inherited from the base stage: say it again.
CMD /http_server; echo "http_server exited with $?"
