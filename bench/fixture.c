/* The benchmark's programs, one static binary with a mode per measurement.
 *
 * Under the init being measured (inside its PID namespace):
 *   fixture wait                  print "ready", then pause(2) until a signal kills it
 *                                 (SIGTERM keeps its default action: the program stops at once)
 *   fixture recv                  print "ready", then for each SIGUSR1 print the CLOCK_MONOTONIC
 *                                 time it was received, in ns
 *   fixture orphans TOTAL BATCH   print "ready", wait for a byte on stdin, then make TOTAL
 *                                 orphans in batches of BATCH that exit all at once; print how
 *                                 long each batch took to be reaped, then "done" and pause(2)
 *
 * Run by the harness, outside the namespace:
 *   fixture spawn N PROG ARGS...  run PROG N times (posix_spawn + waitpid), print each wall time
 *   fixture send PID N GAP_US     read "ready" on stdin (a `recv`'s stdout), then N times: wait
 *                                 GAP_US, send SIGUSR1 to PID, read the receipt time; print
 *                                 receipt - send in ns ("lost" after 1 s without a receipt)
 *   fixture stop PID              send SIGTERM to PID and wait (pidfd) until it has exited;
 *                                 print the time in ns
 *
 * CLOCK_MONOTONIC is one clock for the whole machine, namespaces included, so a time taken by
 * the sender and one taken by the receiver can be subtracted.
 *
 * Built with `gcc -O2 -static`, so the same binary runs in a `FROM scratch` Docker image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "fixture: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void ready(void) {
    printf("ready\n");
    fflush(stdout);
}

static int mode_wait(void) {
    ready();
    for (;;)
        pause();
    return 0; /* not reached */
}

static int mode_recv(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    /* Blocked and taken with sigwaitinfo: no handler runs, the receipt time is taken as soon as
     * this thread is scheduled after the signal is queued to it. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        die("sigprocmask");
    ready();
    for (;;) {
        if (sigwaitinfo(&set, NULL) == -1) {
            if (errno == EINTR)
                continue;
            die("sigwaitinfo");
        }
        int64_t t = now_ns();
        char line[32];
        int n = snprintf(line, sizeof line, "%lld\n", (long long)t);
        if (write(1, line, n) != n)
            return 0; /* the harness has gone */
    }
}

/* One batch: a helper forks BATCH grandchildren that block on a pipe, reports their PIDs and
 * exits, so they are orphaned to the init. Closing the pipe then releases them all at once. */
static int64_t orphan_batch(int batch, int *left) {
    int release[2], report[2];
    if (pipe(release) == -1 || pipe(report) == -1)
        die("pipe");
    pid_t helper = fork();
    if (helper == -1)
        die("fork");
    if (helper == 0) {
        close(report[0]);
        for (int i = 0; i < batch; i++) {
            pid_t g = fork();
            if (g == -1)
                _exit(1);
            if (g == 0) {
                char c;
                close(release[1]);
                close(report[1]);
                while (read(release[0], &c, 1) == -1 && errno == EINTR) {
                }
                _exit(0);
            }
            if (write(report[1], &g, sizeof g) != sizeof g)
                _exit(1);
        }
        _exit(0);
    }
    close(report[1]);
    close(release[0]);
    int status;
    if (waitpid(helper, &status, 0) == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fixture: orphan helper failed\n");
        exit(1);
    }
    pid_t *pids = calloc(batch, sizeof *pids);
    size_t want = batch * sizeof *pids, got = 0;
    while (got < want) {
        ssize_t n = read(report[0], (char *)pids + got, want - got);
        if (n <= 0)
            die("read orphan pids");
        got += n;
    }
    close(report[0]);

    /* Every grandchild is now an orphan of the init (the kernel re-parents before it reports
     * the helper's exit). Release them together and poll until each is gone: a zombie still
     * answers kill(pid, 0), a reaped process gives ESRCH. */
    int64_t t0 = now_ns();
    close(release[1]);
    int alive = batch;
    int64_t give_up = t0 + 5 * (int64_t)1000000000;
    while (alive > 0 && now_ns() < give_up) {
        alive = 0;
        for (int i = 0; i < batch; i++) {
            if (pids[i] == 0)
                continue;
            if (kill(pids[i], 0) == -1 && errno == ESRCH)
                pids[i] = 0;
            else
                alive++;
        }
        if (alive > 0)
            sleep_ns(20000);
    }
    int64_t t1 = now_ns();
    free(pids);
    *left += alive;
    return t1 - t0;
}

static int mode_orphans(int total, int batch) {
    ready();
    char c;
    if (read(0, &c, 1) != 1)
        die("read go");
    int left = 0;
    for (int done = 0; done < total; done += batch) {
        int n = total - done < batch ? total - done : batch;
        printf("burst %d %lld\n", n, (long long)orphan_batch(n, &left));
    }
    printf("unreaped %d\ndone\n", left);
    fflush(stdout);
    for (;;)
        pause();
    return 0; /* not reached */
}

static int mode_spawn(int n, char **argv) {
    for (int i = 0; i < n; i++) {
        pid_t pid;
        int64_t t0 = now_ns();
        int err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
        if (err != 0) {
            errno = err;
            die(argv[0]);
        }
        int status;
        if (waitpid(pid, &status, 0) == -1)
            die("waitpid");
        int64_t t1 = now_ns();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fixture: %s failed with status %d\n", argv[0], status);
            return 1;
        }
        printf("%lld\n", (long long)(t1 - t0));
    }
    return 0;
}

/* Reads one line from fd 0 without stdio, so nothing is buffered past it. */
static int read_line(char *buf, size_t size, int timeout_ms) {
    size_t len = 0;
    while (len + 1 < size) {
        struct pollfd p = {0, POLLIN, 0};
        int r = poll(&p, 1, timeout_ms);
        if (r == 0)
            return -1;
        if (r == -1) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        ssize_t n = read(0, buf + len, 1);
        if (n <= 0)
            return -1;
        if (buf[len] == '\n') {
            buf[len] = 0;
            return 0;
        }
        len++;
    }
    return -1;
}

static int mode_send(pid_t pid, int n, int gap_us) {
    char line[64];
    if (read_line(line, sizeof line, 10000) == -1 || strcmp(line, "ready") != 0) {
        fprintf(stderr, "fixture: receiver never got ready\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        sleep_ns((int64_t)gap_us * 1000);
        int64_t t0 = now_ns();
        if (kill(pid, SIGUSR1) == -1)
            die("kill");
        if (read_line(line, sizeof line, 1000) == -1) {
            printf("lost\n");
            continue;
        }
        printf("%lld\n", atoll(line) - (long long)t0);
    }
    return 0;
}

static int mode_stop(pid_t pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd == -1)
        die("pidfd_open");
    int64_t t0 = now_ns();
    if (kill(pid, SIGTERM) == -1)
        die("kill");
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, 10000)) == -1 && errno == EINTR) {
    }
    int64_t t1 = now_ns();
    if (r == 0) {
        printf("timeout\n");
        return 1;
    }
    printf("%lld\n", (long long)(t1 - t0));
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "wait") == 0)
        return mode_wait();
    if (strcmp(mode, "recv") == 0)
        return mode_recv();
    if (strcmp(mode, "orphans") == 0 && argc == 4)
        return mode_orphans(atoi(argv[2]), atoi(argv[3]));
    if (strcmp(mode, "spawn") == 0 && argc >= 4)
        return mode_spawn(atoi(argv[2]), argv + 3);
    if (strcmp(mode, "send") == 0 && argc == 5)
        return mode_send(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (strcmp(mode, "stop") == 0 && argc == 3)
        return mode_stop(atoi(argv[2]));
    fprintf(stderr, "usage: fixture wait|recv|orphans TOTAL BATCH|spawn N PROG...|"
                    "send PID N GAP_US|stop PID\n");
    return 2;
}
