//! End-to-end: grace as PID 1 of real containers, stopped with `docker stop` through the Docker
//! engine, the way a user meets it.
//!
//! Nothing is pulled (there may be no registry): every image is built `FROM scratch` from static
//! binaries built here: grace and the examples for the musl target (once per test process;
//! cargo's lock serialises concurrent processes), and Debian's busybox-static where a shell is
//! needed. The grace image is the top-level Dockerfile's final stage, with its `builder` stage
//! replaced by an image holding the binary built here (see [`Scope::grace_image`]).
//!
//! With no engine reachable, each test prints `skipped: no Docker engine` and passes, unless
//! CI is set, where it fails. Each test names what it creates after the test and the process id,
//! and removes it on drop, also when it fails. Anything a killed run left behind carries the
//! label `grace-e2e`: `docker rm -f $(docker ps -aq --filter label=grace-e2e)`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-musl";
const BUSYBOX: &str = "/usr/bin/busybox";
const LABEL: &str = "grace-e2e";

// ---------------------------------------------------------------------------------------------
// The contracts
// ---------------------------------------------------------------------------------------------

/// The image users `COPY --from=`: one static binary, nothing else, and it runs there.
#[test]
fn top_level_image_holds_only_a_static_grace() {
    let Some(mut s) = Scope::new("image") else {
        return;
    };
    let grace = s.grace_image();
    let files = s.files_in(&grace);
    assert_eq!(files, ["grace"], "the final stage holds /grace alone");
    let out = docker(&[
        "run",
        "--rm",
        "--label",
        LABEL,
        "--entrypoint",
        "/grace",
        &grace,
        "--version",
    ]);
    assert!(stdout(&out).starts_with("grace "), "{}", stdout(&out));
    // With no CMD, `/grace --` has no program: a usage error, exit 2 (grace --help).
    let out = docker_unchecked(&["run", "--rm", "--label", LABEL, &grace]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing PROGRAM"), "{}", stderr(&out));
}

/// (1) Exec form, grace as ENTRYPOINT: `docker stop` returns as soon as the program has shut
/// down, and the container exits with the program's own status, 0.
#[test]
fn exec_form_docker_stop_is_fast_and_graceful() {
    let Some(mut s) = Scope::new("exec-form") else {
        return;
    };
    let image = s.example_image("http_server", None, &["http_server"]);
    let c = s.run(&[], &image, &[]);
    wait_for_log(&c, "listening on");

    let took = stop(&c, 10);
    println!("exec form with grace: docker stop -t 10 took {took:.2?}");
    assert_eq!(exit_code(&c), 0);
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let logs = logs(&c);
    assert!(
        logs.contains("http_server: SIGTERM: no longer accepting"),
        "{logs}"
    );
    assert!(logs.contains("every request answered; exiting 0"), "{logs}");
}

/// (2) The control. Shell form without grace: the shell is PID 1, has no SIGTERM handler, so
/// the kernel drops `docker stop`'s SIGTERM; Docker waits the whole timeout and SIGKILLs (137).
/// The same image with grace as ENTRYPOINT stops at once and the server shuts down gracefully.
#[test]
fn shell_form_takes_the_whole_timeout_without_grace_and_grace_fixes_it() {
    let Some(mut s) = Scope::new("shell-form") else {
        return;
    };
    let files = ["http_server", "busybox"];
    let bare = s.example_image("shell_form", Some("without-grace"), &files);
    let with_grace = s.example_image("shell_form", Some("with-grace"), &files);
    let bare = s.run(&[], &bare, &[]);
    let with_grace = s.run(&[], &with_grace, &[]);
    wait_for_log(&bare, "listening on");
    wait_for_log(&with_grace, "listening on");

    let bare_took = stop(&bare, 3);
    let grace_took = stop(&with_grace, 3);
    println!(
        "shell form, docker stop -t 3: without grace {bare_took:.2?} (exit {}), \
         with grace {grace_took:.2?} (exit {})",
        exit_code(&bare),
        exit_code(&with_grace)
    );
    assert_eq!(exit_code(&bare), 137);
    assert!(bare_took >= Duration::from_millis(2900), "{bare_took:?}");
    assert!(!logs(&bare).contains("SIGTERM"), "{}", logs(&bare));

    assert_eq!(
        exit_code(&with_grace),
        143,
        "the shell's status: killed by SIGTERM"
    );
    assert!(grace_took < Duration::from_secs(2), "{grace_took:?}");
    let logs = logs(&with_grace);
    assert!(logs.contains("every request answered; exiting 0"), "{logs}");
}

/// (3) Scenario A: a request in flight when `docker stop` comes is answered in full; a new
/// connection once the server stopped accepting is refused.
#[test]
fn scenario_a_a_request_in_flight_completes_with_200() {
    let Some(mut s) = Scope::new("scenario-a") else {
        return;
    };
    let image = s.example_image("http_server", None, &["http_server"]);
    let net = s.network();
    let c = s.run(&["--network", &net], &image, &[]);
    wait_for_log(&c, "listening on");
    let addr = SocketAddr::new(ip(&c, &net).parse().unwrap(), 8080);

    let slow = thread::spawn(move || http(addr, "GET", "/slow?ms=2000", Duration::from_secs(30)));
    wait_for_log(&c, "GET /slow?ms=2000");
    let started = Instant::now();
    let stopper = {
        let c = c.clone();
        thread::spawn(move || stop(&c, 10))
    };
    wait_for_log(&c, "no longer accepting");
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    assert!(
        refused.is_err(),
        "a new connection was accepted while stopping"
    );

    let (status, body) = slow.join().unwrap().expect("the slow request is answered");
    assert_eq!((status, body.as_str()), (200, "done after 2000 ms\n"));
    let took = stopper.join().unwrap();
    println!(
        "scenario A: docker stop took {took:.2?}, {:.2?} after the request was in flight",
        started.elapsed()
    );
    assert_eq!(exit_code(&c), 0);
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        logs(&c).contains("finishing 1 request(s) in flight"),
        "{}",
        logs(&c)
    );
}

/// (4) Scenario B: every record acknowledged before `docker stop` is in the file on the volume
/// afterwards. The control, `docker kill`, loses them all: they were only ever in memory.
#[test]
fn scenario_b_every_acknowledged_record_is_on_the_volume() {
    let Some(mut s) = Scope::new("scenario-b") else {
        return;
    };
    let image = s.example_image("writer", None, &["writer"]);
    let reader = s.busybox_image(None);
    let net = s.network();
    let (kept, lost) = (s.volume(), s.volume());
    let graceful = s.run(
        &["--network", &net, "-v", &format!("{kept}:/data")],
        &image,
        &[],
    );
    let killed = s.run(
        &["--network", &net, "-v", &format!("{lost}:/data")],
        &image,
        &[],
    );
    wait_for_log(&graceful, "listening on");
    wait_for_log(&killed, "listening on");

    let acked = send_records(&ip(&graceful, &net), 500);
    send_records(&ip(&killed, &net), 20);
    let took = stop(&graceful, 10);
    docker(&["kill", &killed]);
    println!("scenario B: docker stop took {took:.2?}");
    assert_eq!(exit_code(&graceful), 0);
    assert!(
        logs(&graceful).contains("500 record(s) written"),
        "{}",
        logs(&graceful)
    );

    let read = |volume: &str| {
        let mount = format!("{volume}:/data");
        let args = ["--rm", "-v", &mount];
        docker_unchecked(&s.run_args(&args, &reader, &["sh", "-c", "cat /data/records.log"]))
    };
    let on_disk = read(&kept);
    let lines: Vec<&str> = std::str::from_utf8(&on_disk.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        lines, acked,
        "the file holds exactly the acknowledged records"
    );
    let after_kill = read(&lost);
    assert!(!after_kill.status.success(), "docker kill left a data file");
}

/// (5) Scenario C, deregistering in the program: the registry drops the instance before the
/// instance stops answering, and lists it no more after the stop.
#[test]
fn scenario_c_the_service_deregisters_before_it_stops_serving() {
    let Some(mut s) = Scope::new("scenario-c") else {
        return;
    };
    let (out, _) = deregisters_before_it_stops_serving(&mut s, &[]);
    let order = [
        "service: SIGTERM received",
        "service: deregistered",
        "no longer accepting",
    ];
    assert_in_order(&out, &order);
}

/// (5, again) Scenario C with grace's pre-stop hook: `GRACE_PRE_STOP="/service deregister"`
/// deregisters before grace forwards SIGTERM, so the service finds itself already gone.
#[test]
fn scenario_c_the_pre_stop_hook_deregisters_before_the_signal_is_forwarded() {
    let Some(mut s) = Scope::new("scenario-c-hook") else {
        return;
    };
    let env = [
        "-e",
        "GRACE_PRE_STOP=/service deregister",
        "-e",
        "GRACE_LOG=info",
    ];
    let (out, err) = deregisters_before_it_stops_serving(&mut s, &env);
    // The hook shares the service's stdout, so its line is ordered with the service's.
    let service = [
        "service: deregistered",
        "service: SIGTERM received",
        "was already deregistered",
        "no longer accepting",
    ];
    assert_in_order(&out, &service);
    let grace = [
        "running pre-stop hook",
        "pre-stop hook exited with 0",
        "program exited with 0",
    ];
    assert_in_order(&err, &grace);
}

/// (6) Any signal reaches the program through grace: `docker kill --signal=HUP` and USR1 are
/// seen by the program's traps; `docker kill` (SIGKILL, to grace) ends the container.
#[test]
fn docker_kill_signals_reach_the_program_and_sigkill_ends_it() {
    let Some(mut s) = Scope::new("kill") else {
        return;
    };
    let image = s.busybox_image(None);
    let script = "trap 'echo got HUP' HUP; trap 'echo got USR1' USR1; echo ready; \
                  while :; do sleep 0.1; done";
    let c = s.run(&[], &image, &["sh", "-c", script]);
    wait_for_log(&c, "ready");
    docker(&["kill", "--signal=HUP", &c]);
    wait_for_log(&c, "got HUP");
    docker(&["kill", "--signal=USR1", &c]);
    wait_for_log(&c, "got USR1");
    docker(&["kill", &c]);
    assert_eq!(exit_code(&c), 137);
}

/// (7) Orphans are reaped: a program whose 50 children each leave a grandchild behind leaves no
/// zombie once they exit. The control runs the same script as PID 1 without grace and must see
/// all 50 zombies, so the check can fail. (`docker top` never shows zombies: it lists the
/// container's cgroup, which a process leaves when it exits. /proc in the container does.)
#[test]
fn orphans_leave_no_zombie_and_without_grace_they_do() {
    let Some(mut s) = Scope::new("zombies") else {
        return;
    };
    let image = s.busybox_image(None);
    let script = "for i in $(seq 50); do (sleep 1 &); done; echo spawned; exec sleep 1000";
    let cmd = ["sh", "-c", script];
    let with_grace = s.run(&[], &image, &cmd);
    let without = s.run(&["--entrypoint", "/bin/sh"], &image, &cmd[1..]);
    wait_for_log(&with_grace, "spawned");
    wait_for_log(&without, "spawned");

    // With grace, PID 1's only living child is the program (`exec sleep 1000`).
    let done = poll(Duration::from_secs(10), || {
        let (living, zombies) = children_of_pid_1(&with_grace);
        (living == 1 && zombies == 0).then_some(())
    });
    assert!(
        done.is_some(),
        "still (living, zombie) children of PID 1: {:?}",
        children_of_pid_1(&with_grace)
    );
    let zombies = poll(Duration::from_secs(10), || {
        let (living, zombies) = children_of_pid_1(&without);
        (living == 0).then_some(zombies)
    });
    assert_eq!(
        zombies,
        Some(50),
        "the control: sleep as PID 1 reaps nobody"
    );
}

/// (8) GRACE_TIMEOUT set in the image, below Docker's stop timeout: a program that ignores
/// SIGTERM is SIGKILLed by grace at that time, long before Docker would, and `docker logs`
/// says so in one line.
#[test]
fn grace_timeout_kills_a_program_that_ignores_sigterm_before_docker_would() {
    let Some(mut s) = Scope::new("timeout") else {
        return;
    };
    let image = s.busybox_image(Some("2s"));
    let script = "trap '' TERM; echo ignoring SIGTERM; while :; do sleep 1; done";
    let c = s.run(&[], &image, &["sh", "-c", script]);
    wait_for_log(&c, "ignoring SIGTERM");

    let took = stop(&c, 30);
    println!("GRACE_TIMEOUT=2s, docker stop -t 30 took {took:.2?}");
    assert_eq!(exit_code(&c), 137);
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let logs = logs(&c);
    let kill_lines: Vec<&str> = logs.lines().filter(|l| l.contains("SIGKILL")).collect();
    assert_eq!(kill_lines.len(), 1, "{logs}");
    println!("grace's line: {}", kill_lines[0]);
    assert!(kill_lines[0].starts_with("[grace WARN]"), "{logs}");
    assert!(kill_lines[0].contains("grace period over"), "{logs}");
}

/// (8, again) The cascade: in shell form the shell dies of the forwarded SIGTERM, and grace
/// then sends SIGTERM to what is left, so the program still gets its own and shuts down.
#[test]
fn shell_form_cascade_gives_the_program_its_own_sigterm() {
    let Some(mut s) = Scope::new("cascade") else {
        return;
    };
    let files = ["http_server", "busybox"];
    let image = s.example_image("shell_form", Some("with-grace"), &files);
    let c = s.run(&["-e", "GRACE_LOG=info"], &image, &[]);
    wait_for_log(&c, "listening on");

    let took = stop(&c, 10);
    assert_eq!(exit_code(&c), 143);
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (out, err) = streams(&c);
    let grace = ["program exited with 143", "sending SIGTERM to 1 process: "];
    assert_in_order(&err, &grace);
    assert!(err.contains(" (http_server); SIGKILL in "), "{err}");
    let server = [
        "http_server: SIGTERM: no longer accepting",
        "every request answered; exiting 0",
    ];
    assert_in_order(&out, &server);
}

/// grace bind-mounted at /sbin/docker-init and started the way Docker starts its init
/// (`docker-init -- PROGRAM ARGS`, what `docker run --init` does with `dockerd --init-path`):
/// tini's personality, a version line `docker info` parses, and a graceful stop.
#[test]
fn grace_bind_mounted_as_docker_init_runs_like_dockers_init() {
    let Some(mut s) = Scope::new("docker-init") else {
        return;
    };
    let image = s.busybox_image(None);
    let mount = format!("{}:/sbin/docker-init:ro", binary("grace").display());
    let script = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let options = ["-v", &mount, "--entrypoint", "/sbin/docker-init"];
    let c = s.run(&options, &image, &["--", "sh", "-c", script]);
    wait_for_log(&c, "ready");
    let version = stdout(&docker(&["exec", &c, "/sbin/docker-init", "--version"]));
    assert!(
        version.starts_with("tini version 0.19.0 - git."),
        "{version}"
    );
    let took = stop(&c, 10);
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
    assert!(logs(&c).contains("got TERM"), "{}", logs(&c));
    assert_eq!(exit_code(&c), 0);
}

// ---------------------------------------------------------------------------------------------
// Scenario helpers
// ---------------------------------------------------------------------------------------------

/// Sends `n` records to the writer on `ip` and returns the ones acknowledged.
fn send_records(ip: &str, n: usize) -> Vec<String> {
    let stream = TcpStream::connect((ip, 7000)).expect("the writer accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answers = BufReader::new(stream.try_clone().unwrap());
    let mut acked = Vec::new();
    for i in 1..=n {
        let record = format!("record {i}");
        // One write per record: two would wait on Nagle's algorithm and a delayed ACK.
        (&stream)
            .write_all(format!("{record}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        answers.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim_end(), format!("ack {i}"));
        acked.push(record);
    }
    acked
}

/// Runs scenario C on its own network and returns the service's logs. While `docker stop`
/// runs, a poller asks the registry whether the instance is listed and the instance whether it
/// answers, over and over; the instance must never be listed while it does not answer, and must
/// be seen unlisted while it still answers. Returns the service's (stdout, stderr).
fn deregisters_before_it_stops_serving(s: &mut Scope, service_env: &[&str]) -> (String, String) {
    let registry = s.example_image("registry", None, &["registry"]);
    let service = s.example_image("service", None, &["service"]);
    let net = s.network();
    let r = s.run(
        &["--network", &net, "--network-alias", "registry"],
        &registry,
        &[],
    );
    wait_for_log(&r, "listening on");
    let c = s.run(
        &[&["--network", &net][..], service_env].concat(),
        &service,
        &[],
    );
    wait_for_log(&c, "registered with");
    let registry: SocketAddr = format!("{}:8500", ip(&r, &net)).parse().unwrap();
    let instance: SocketAddr = format!("{}:8080", ip(&c, &net)).parse().unwrap();
    let listed = move || {
        let (_, list) = http(registry, "GET", "/instances", Duration::from_secs(5))
            .expect("the registry answers");
        list.lines().any(|l| l == instance.to_string())
    };
    let answers = move || {
        matches!(
            http(instance, "GET", "/health", Duration::from_secs(5)),
            Ok((200, _))
        )
    };
    assert!(
        listed() && answers(),
        "registered and serving before the stop"
    );

    let poller = thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let now = (listed(), answers());
            seen.push(now);
            if now == (false, false) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    let took = stop(&c, 10);
    let seen = poller.join().unwrap();
    let how = match service_env.is_empty() {
        true => "by the service",
        false => "by the pre-stop hook",
    };
    println!(
        "scenario C, deregistered {how}: docker stop took {took:.2?}; \
         (listed, answers) seen: {}",
        runs(&seen)
    );
    assert_eq!(exit_code(&c), 0);
    assert_eq!(
        seen.last(),
        Some(&(false, false)),
        "ends unlisted and not answering"
    );
    assert!(!seen.contains(&(true, false)), "listed while not answering");
    assert!(
        seen.contains(&(false, true)),
        "never seen deregistered while still serving"
    );
    assert!(
        logs(&r).contains(&format!("deregistered {instance}")),
        "{}",
        logs(&r)
    );
    streams(&c)
}

/// How many children PID 1 of the container has, (alive, zombie), as /proc in it says.
fn children_of_pid_1(container: &str) -> (usize, usize) {
    // Processes may exit between the glob and `cat`: cat's complaints are expected.
    let out = docker_unchecked(&["exec", container, "sh", "-c", "cat /proc/[0-9]*/stat"]);
    let (mut living, mut zombies) = (0, 0);
    for stat in stdout(&out).lines() {
        // "pid (comm) state ppid ...": comm may hold anything, so it ends at the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let (Some(state), Some("1")) = (rest.next(), rest.next()) else {
            continue;
        };
        match state {
            "Z" => zombies += 1,
            _ => living += 1,
        }
    }
    (living, zombies)
}

/// "(true, true) x1, (false, true) x29, (false, false) x1": a sequence as runs of equal items.
fn runs<T: PartialEq + std::fmt::Debug>(items: &[T]) -> String {
    let mut runs: Vec<(&T, usize)> = Vec::new();
    for item in items {
        match runs.last_mut() {
            Some((last, n)) if *last == item => *n += 1,
            _ => runs.push((item, 1)),
        }
    }
    let runs: Vec<String> = runs.iter().map(|(t, n)| format!("{t:?} x{n}")).collect();
    runs.join(", ")
}

fn assert_in_order(logs: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match logs[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle:?} missing or out of order in:\n{logs}"),
        }
    }
}

/// One HTTP/1.1 request; `Err` if the connection is refused or times out.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    wait: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(wait))?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    match (status, body) {
        (Some(status), Some(body)) => Ok((status, body)),
        _ => Err(std::io::Error::other(format!("bad answer: {answer:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// `docker stop -t SECS` and how long it took to return.
fn stop(container: &str, secs: u32) -> Duration {
    let started = Instant::now();
    docker(&["stop", "-t", &secs.to_string(), container]);
    started.elapsed()
}

/// Waits for the container to end and returns its exit code.
fn exit_code(container: &str) -> i32 {
    let out = docker(&["wait", container]);
    stdout(&out)
        .trim()
        .parse()
        .expect("docker wait prints the exit code")
}

/// Everything the container wrote, stdout then stderr. Their relative order is lost: Docker
/// reads the two pipes apart. Use [`streams`] to check an order.
fn logs(container: &str) -> String {
    let (out, err) = streams(container);
    format!("{out}{err}")
}

/// The container's stdout and stderr. grace logs to stderr; the examples print to stdout.
fn streams(container: &str) -> (String, String) {
    let out = docker(&["logs", container]);
    (stdout(&out), stderr(&out))
}

/// Waits for `needle` to appear in the container's logs; never a fixed sleep.
fn wait_for_log(container: &str, needle: &str) {
    let found = poll(Duration::from_secs(30), || {
        logs(container).contains(needle).then_some(())
    });
    assert!(
        found.is_some(),
        "no {needle:?} in the logs of {container}:\n{}",
        logs(container)
    );
}

fn ip(container: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let out = docker(&["inspect", "-f", &format, container]);
    stdout(&out).trim().to_string()
}

/// Calls `check` every 50 ms until it returns `Some`, or `None` once `limit` has passed.
fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The Docker objects of one test
// ---------------------------------------------------------------------------------------------

/// What one test created in Docker, removed on drop (also when the test panics).
struct Scope {
    prefix: String,
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
    dirs: Vec<PathBuf>,
    grace: Option<String>,
}

impl Scope {
    /// `None` when no engine is reachable (the test is skipped), except under CI.
    fn new(test: &str) -> Option<Scope> {
        if !engine_reachable() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but no Docker engine is reachable"
            );
            println!("skipped: no Docker engine");
            return None;
        }
        Some(Scope {
            prefix: format!("{LABEL}-{}-{test}", std::process::id()),
            containers: Vec::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
            images: Vec::new(),
            dirs: Vec::new(),
            grace: None,
        })
    }

    fn name(&self, what: &str, n: usize) -> String {
        format!("{}-{what}{n}", self.prefix)
    }

    /// The top-level Dockerfile's final stage, built with its `builder` stage replaced by an
    /// image holding the static grace built here: what `--build-context builder=...` does with
    /// BuildKit, which this engine may lack (the classic builder builds every stage before the
    /// target, so it would pull rust:1-alpine). The final stage is taken from the file as it
    /// is, from its `FROM` line to the end.
    fn grace_image(&mut self) -> String {
        if let Some(image) = &self.grace {
            return image.clone();
        }
        let bin = self.build_from("FROM scratch\nCOPY grace /grace\n", &[binary("grace")]);
        let dockerfile = fs::read_to_string(repo().join("Dockerfile")).unwrap();
        let final_stage = final_stage(&dockerfile);
        let image = self.build_from(&format!("FROM {bin} AS builder\n\n{final_stage}"), &[]);
        self.grace = Some(image.clone());
        image
    }

    /// An image from examples/docker/NAME.Dockerfile; its context holds `files`, taken from the
    /// examples built here (or busybox).
    fn example_image(&mut self, name: &str, target: Option<&str>, files: &[&str]) -> String {
        let grace = self.grace_image();
        let files: Vec<PathBuf> = files.iter().map(|f| example_file(f)).collect();
        let dockerfile = repo().join(format!("examples/docker/{name}.Dockerfile"));
        self.build(&dockerfile, target, &files, &[("GRACE_IMAGE", &grace)])
    }

    /// tests/docker/busybox.Dockerfile: grace plus busybox as /bin/sh.
    fn busybox_image(&mut self, grace_timeout: Option<&str>) -> String {
        let grace = self.grace_image();
        let dockerfile = repo().join("tests/docker/busybox.Dockerfile");
        let args = [
            ("GRACE_IMAGE", grace.as_str()),
            ("GRACE_TIMEOUT", grace_timeout.unwrap_or("")),
        ];
        self.build(&dockerfile, None, &[PathBuf::from(BUSYBOX)], &args)
    }

    fn build_from(&mut self, dockerfile: &str, files: &[PathBuf]) -> String {
        let path = self.context(&[]).join("Dockerfile.inline");
        fs::write(&path, dockerfile).unwrap();
        self.build(&path, None, files, &[])
    }

    /// `docker build` with a fresh context holding `files`. --no-cache: tests running at once
    /// would otherwise share cached layers that another test's cleanup may delete mid-build.
    fn build(
        &mut self,
        dockerfile: &Path,
        target: Option<&str>,
        files: &[PathBuf],
        args: &[(&str, &str)],
    ) -> String {
        let image = self.name("image", self.images.len());
        let context = self.context(files);
        let mut cmd = vec!["build", "-q", "--no-cache", "--label", LABEL, "-t", &image];
        let dockerfile = dockerfile.to_str().unwrap();
        cmd.extend(["-f", dockerfile]);
        if let Some(target) = target {
            cmd.extend(["--target", target]);
        }
        let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for arg in &args {
            cmd.extend(["--build-arg", arg]);
        }
        let context = context.to_str().unwrap();
        cmd.push(context);
        self.images.push(image.clone());
        docker(&cmd);
        image
    }

    /// A fresh directory holding copies of `files`.
    fn context(&mut self, files: &[PathBuf]) -> PathBuf {
        let dir = std::env::temp_dir().join(self.name("context", self.dirs.len()));
        fs::create_dir_all(&dir).unwrap();
        self.dirs.push(dir.clone());
        for file in files {
            fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
        }
        dir
    }

    /// `docker run -d` with a name and our label; returns the container's name.
    fn run(&mut self, options: &[&str], image: &str, cmd: &[&str]) -> String {
        let name = self.name("container", self.containers.len());
        self.containers.push(name.clone());
        let mut args = vec!["-d".to_string(), "--name".into(), name.clone()];
        args.extend(options.iter().map(|o| o.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&self.run_args(&args, image, cmd));
        name
    }

    /// `docker run OPTIONS --label grace-e2e IMAGE CMD...`, as arguments.
    fn run_args<'a>(&self, options: &[&'a str], image: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run"];
        args.extend(options);
        args.extend(["--label", LABEL, image]);
        args.extend(cmd);
        args
    }

    fn network(&mut self) -> String {
        let name = self.name("net", self.networks.len());
        self.networks.push(name.clone());
        docker(&["network", "create", "--label", LABEL, &name]);
        name
    }

    fn volume(&mut self) -> String {
        let name = self.name("volume", self.volumes.len());
        self.volumes.push(name.clone());
        docker(&["volume", "create", "--label", LABEL, &name]);
        name
    }

    /// The regular files and links in `image`'s file system, as `docker export` shows them,
    /// without the ones Docker adds to every container.
    fn files_in(&mut self, image: &str) -> Vec<String> {
        let name = self.name("container", self.containers.len());
        self.containers.push(name.clone());
        docker(&["create", "--name", &name, "--label", LABEL, image]);
        let tar = docker(&["export", &name]);
        let dir = self.context(&[]);
        fs::write(dir.join("fs.tar"), &tar.stdout).unwrap();
        let list = Command::new("tar")
            .arg("-tf")
            .arg(dir.join("fs.tar"))
            .output()
            .unwrap();
        let docker_adds = [".dockerenv", "dev/", "etc/", "proc/", "sys/"];
        stdout(&list)
            .lines()
            .filter(|f| !f.ends_with('/') && !docker_adds.iter().any(|d| f.starts_with(d)))
            .map(String::from)
            .collect()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(self.containers.iter().map(String::as_str));
            _ = run_docker(&args, Duration::from_secs(60));
        }
        for (kind, names) in [("network", &self.networks), ("volume", &self.volumes)] {
            if !names.is_empty() {
                let mut args = vec![kind, "rm"];
                args.extend(names.iter().map(String::as_str));
                _ = run_docker(&args, Duration::from_secs(60));
            }
        }
        // Newest first: an image built FROM an older one of ours goes before it.
        for image in self.images.iter().rev() {
            _ = run_docker(&["rmi", "-f", image], Duration::from_secs(60));
        }
        for dir in &self.dirs {
            _ = fs::remove_dir_all(dir);
        }
    }
}

/// The top-level Dockerfile's last stage, which must be `FROM scratch AS grace` and take its
/// binary from the `builder` stage only.
fn final_stage(dockerfile: &str) -> &str {
    let start = dockerfile
        .match_indices("\nFROM ")
        .last()
        .map(|(i, _)| i + 1)
        .expect("the Dockerfile has stages");
    let stage = &dockerfile[start..];
    assert!(
        stage.starts_with("FROM scratch AS grace\n"),
        "final stage: {stage}"
    );
    let sources: BTreeSet<&str> = stage
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--from="))
        .collect();
    assert_eq!(sources, BTreeSet::from(["builder"]), "final stage: {stage}");
    stage
}

// ---------------------------------------------------------------------------------------------
// Building and running things
// ---------------------------------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static grace and examples, built once per process: `cargo build --release --target
/// x86_64-unknown-linux-musl --examples`, as the docs tell users. Returns the release folder.
fn release_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(repo())
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                TARGET,
                "--bins",
                "--examples",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the static binaries failed (is the target installed? \
             rustup target add {TARGET}):\n{}",
            stderr(&out)
        );
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"));
        target_dir.join(TARGET).join("release")
    })
}

fn binary(name: &str) -> PathBuf {
    release_dir().join(name)
}

/// An example binary, or busybox (Debian's busybox-static, a static binary too).
fn example_file(name: &str) -> PathBuf {
    if name == "busybox" {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: apt-get install busybox-static"
        );
        return PathBuf::from(BUSYBOX);
    }
    release_dir().join("examples").join(name)
}

fn engine_reachable() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    *REACHABLE.get_or_init(|| {
        let out = run_docker(
            &["version", "--format", "{{.Server.Version}}"],
            Duration::from_secs(30),
        );
        matches!(out, Some(out) if out.status.success())
    })
}

/// Runs `docker ARGS` and panics, with its stderr, unless it succeeds.
fn docker(args: &[&str]) -> Output {
    let out = docker_unchecked(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        stderr(&out)
    );
    out
}

/// Runs `docker ARGS`, within 3 minutes (a build or a 30 s stop timeout fits).
fn docker_unchecked(args: &[&str]) -> Output {
    run_docker(args, Duration::from_secs(180))
        .unwrap_or_else(|| panic!("docker {} did not finish", args.join(" ")))
}

/// `None` if docker cannot be started or does not finish within `limit` (then it is killed).
fn run_docker(args: &[&str], limit: Duration) -> Option<Output> {
    let child = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || _ = tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.ok(),
        Err(_) => {
            _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            None
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
