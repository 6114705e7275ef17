//! What the program inherits, what it does not, and how grace behaves while nothing happens.

mod common;

use std::time::{Duration, Instant};

use common::{grace, Mode};

/// Execs its arguments with SIGHUP and SIGTTOU ignored and SIGUSR1/SIGTERM blocked, as a
/// careless parent (nohup, some CI runners) would hand them down.
const MESSY_PARENT: &[&str] = &[
    "python3",
    "-c",
    "import os, signal, sys\n\
     signal.signal(signal.SIGHUP, signal.SIG_IGN)\n\
     signal.signal(signal.SIGTTOU, signal.SIG_IGN)\n\
     signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGTERM])\n\
     os.execvp(sys.argv[1], sys.argv[1:])",
];

/// Signals 32 to 34 (bits 31 to 33) belong to the C library's threads; libc refuses to change
/// them, and the program's own libc installs its handlers at start. A parent may leave them
/// ignored (this sandbox does), and grace passes that on untouched.
const LIBC_RESERVED: u64 = 0b111 << 31;

fn status_line<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
}

#[test]
fn program_starts_with_default_dispositions_and_an_empty_mask() {
    need_namespaces!();
    // The control: without grace the messy parent's state does reach the program.
    let out = std::process::Command::new(MESSY_PARENT[0])
        .args(&MESSY_PARENT[1..])
        .args(["cat", "/proc/self/status"])
        .output()
        .unwrap();
    let control = String::from_utf8(out.stdout).unwrap();
    assert_ne!(status_line(&control, "SigIgn:"), "0000000000000000");
    assert_ne!(status_line(&control, "SigBlk:"), "0000000000000000");

    for mode in [Mode::Init, Mode::Child] {
        let out = grace(mode, &["cat", "/proc/self/status"])
            .through(MESSY_PARENT)
            .output();
        assert_eq!(out.code, 0, "{}", out.stderr);
        // grace itself ignores SIGTTIN/SIGTTOU; none of that may leak into the program.
        let ignored = u64::from_str_radix(status_line(&out.stdout, "SigIgn:"), 16).unwrap();
        assert_eq!(ignored & !LIBC_RESERVED, 0, "ignored: {ignored:#x}");
        assert_eq!(status_line(&out.stdout, "SigBlk:"), "0000000000000000");
    }
}

#[test]
fn grace_unblocks_what_its_parent_blocked_so_forwarding_still_works() {
    need_namespaces!();
    let g = grace(Mode::Child, &[&common::fixture("trap.sh"), "app", "USR1"])
        .through(MESSY_PARENT)
        .start();
    g.expect_line("app ready");
    g.signal("USR1");
    g.expect_line("app got USR1");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
}

#[test]
fn program_sees_inherited_descriptors_and_none_of_graces_own() {
    need_namespaces!();
    // fd 7 stands for a socket-activation descriptor handed down to grace.
    let with_fd7 = ["sh", "-c", "exec 7</dev/null; exec \"$@\"", "sh"];
    // The shell expands the glob itself: no pipe or child of its own shows up in the list.
    let list = ["sh", "-c", "cd /proc/$$/fd && echo *"];
    let direct = std::process::Command::new(with_fd7[0])
        .args(&with_fd7[1..])
        .args(list)
        .output()
        .unwrap();
    let direct = String::from_utf8(direct.stdout).unwrap();
    assert!(direct.contains('7'), "the control sees fd 7: {direct}");
    for mode in [Mode::Child, Mode::Init] {
        let out = grace(mode, &list).through(&with_fd7).output();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout.trim_end(),
            direct.trim_end(),
            "program's fds under grace vs. directly"
        );
    }
}

#[test]
fn program_inherits_the_environment_and_stdin() {
    need_namespaces!();
    let out = grace(
        Mode::Init,
        &["sh", "-c", "echo \"$APP_SETTING $RUST_LOG\"; cat"],
    )
    .env("APP_SETTING", "blue")
    .env("RUST_LOG", "trace")
    .output();
    assert_eq!(out.stdout, "blue trace\n");
    assert_eq!(out.stderr, "", "RUST_LOG is the program's, not grace's");
}

#[test]
fn grace_does_not_wake_up_while_nothing_happens() {
    need_namespaces!();
    let g = grace(Mode::Init, &["sh", "-c", "echo ready; exec sleep 1000"]).start();
    g.expect_line("ready");
    let pid = g.pid();
    // Let grace finish handling the start-up (it may still be logging or reaping nothing).
    let settle = Instant::now();
    let mut before = common::context_switches(pid);
    while settle.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(50));
        before = common::context_switches(pid);
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = common::context_switches(pid);
    assert_eq!(
        after,
        before,
        "grace woke up {} times in 2s of idling",
        after - before
    );
}

#[test]
fn logs_go_to_stderr_and_stdout_is_the_programs_alone() {
    need_namespaces!();
    let quiet = grace(Mode::Init, &["sh", "-c", "echo hello"]).output();
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        ("hello\n", "")
    );

    let info = grace(Mode::Init, &["-v", "sh", "-c", "echo hello"]).output();
    assert_eq!(info.stdout, "hello\n");
    assert!(
        info.stderr.contains("[grace INFO] started 'sh' as pid "),
        "{}",
        info.stderr
    );
    assert!(
        info.stderr.contains("program exited with 0"),
        "{}",
        info.stderr
    );
    assert!(!info.stderr.contains("DEBUG"));

    let debug = grace(
        Mode::Init,
        &["-vv", "sh", "-c", "kill -s HUP 1; echo hello"],
    )
    .output();
    assert!(
        debug.stderr.contains("[grace DEBUG] forwarded SIGHUP"),
        "{}",
        debug.stderr
    );

    let env = grace(Mode::Init, &["sh", "-c", "echo hello"])
        .env("GRACE_LOG", "debug")
        .output();
    assert!(env.stderr.contains("[grace DEBUG]"), "{}", env.stderr);
    assert_eq!(env.stdout, "hello\n");
}
