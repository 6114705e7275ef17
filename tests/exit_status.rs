//! Exit status: the program's code, 128+N for a signal, and grace's own documented codes.

mod common;

use std::thread;
use std::time::Duration;

use common::{fixture, grace, Mode};

#[test]
fn exit_codes_0_to_255_pass_through() {
    need_namespaces!();
    // Four threads, 64 codes each: 256 namespaces in a few seconds.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                for code in (w..256).step_by(4) {
                    let out = grace(Mode::Init, &["sh", "-c", &format!("exit {code}")]).output();
                    assert_eq!(out.code, code, "stderr: {}", out.stderr);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn signaled_program_gives_128_plus_n() {
    need_namespaces!();
    for (sig, n) in [
        ("HUP", 1),
        ("INT", 2),
        ("KILL", 9),
        ("SEGV", 11),
        ("TERM", 15),
        ("USR1", 10),
    ] {
        let script = format!("kill -s {sig} $$; sleep 5");
        for mode in [Mode::Init, Mode::Child] {
            let out = grace(mode, &["sh", "-c", &script]).output();
            assert_eq!(out.code, 128 + n, "{sig}: {}", out.stderr);
        }
    }
}

#[test]
fn signaled_by_a_real_time_signal_gives_128_plus_n() {
    need_namespaces!();
    // nix cannot name real-time signals; grace decodes wait statuses itself for this case.
    let out = grace(Mode::Init, &["sh", "-c", "kill -s 40 $$; sleep 5"]).output();
    assert_eq!(out.code, 128 + 40, "{}", out.stderr);
}

#[test]
fn program_that_handles_sigterm_and_exits_0_gives_0() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let g = grace(mode, &[&fixture("trap.sh"), "app"]).start();
        g.expect_line("app ready");
        g.signal("TERM");
        let out = g.wait(common::PATIENCE);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("app got TERM"));
    }
}

#[test]
fn program_ignoring_sigterm_is_killed_at_the_grace_timeout_with_137() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &[
            "-t",
            "1",
            "sh",
            "-c",
            "trap '' TERM; echo ready; exec sleep 1000",
        ],
    )
    .start();
    g.expect_line("ready");
    let sent = std::time::Instant::now();
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let took = sent.elapsed();
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert!(
        took >= Duration::from_millis(950),
        "killed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "killed too late: {took:?}");
    let kill_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("SIGKILL"))
        .collect();
    assert_eq!(
        kill_lines.len(),
        1,
        "one line names the kill: {}",
        out.stderr
    );
    assert!(
        kill_lines[0].contains("grace period over after 1"),
        "{}",
        kill_lines[0]
    );
    assert!(
        kill_lines[0].contains("(sleep)"),
        "names what it killed: {}",
        kill_lines[0]
    );
}

/// grace's own failures: one line on stderr starting with `grace:`, naming the input, and the
/// documented code; nothing is printed on stdout.
#[test]
fn start_up_failures_print_one_line_and_use_documented_codes() {
    need_namespaces!();
    let plain = std::env::temp_dir().join(format!("grace-not-executable-{}", std::process::id()));
    std::fs::write(&plain, "echo hi\n").unwrap(); // created without any x bit
    let plain = plain.to_str().unwrap();
    let not_exec = format!("'{plain}': cannot execute");
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["/no/such/program"],
            127,
            "'/no/such/program': command not found",
        ),
        (
            &["no-such-command-anywhere"],
            127,
            "'no-such-command-anywhere'",
        ),
        (&[plain], 126, &not_exec),
        (&["/"], 126, "'/': cannot execute"),
        (&["--grace", "ten", "true"], 2, "invalid --grace 'ten'"),
        (&["--frobnicate", "true"], 2, "--frobnicate"),
        (
            &["--rewrite", "TERM:NOPE", "true"],
            2,
            "unknown signal 'NOPE'",
        ),
        (&[], 2, "missing PROGRAM"),
    ];
    for (args, code, needle) in cases {
        for mode in [Mode::Init, Mode::Child] {
            let out = grace(mode, args).output();
            assert_eq!(out.code, *code, "{args:?}: {}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {:?}", out.stderr);
            assert!(out.stderr.starts_with("grace: "), "{:?}", out.stderr);
            assert!(
                out.stderr.contains(needle),
                "{args:?}: {:?} lacks {needle:?}",
                out.stderr
            );
            assert_eq!(out.stdout, "");
        }
    }
    std::fs::remove_file(plain).unwrap();
}

#[test]
fn bad_environment_values_are_usage_errors() {
    need_namespaces!();
    let out = grace(Mode::Child, &["true"])
        .env("GRACE_DRAIN", "soon")
        .output();
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.trim(), "grace: invalid GRACE_DRAIN 'soon': expected a number with an optional unit: 10, 10s, 1500ms, 2m, 1h (see 'grace --help')");
}

#[test]
fn help_and_version_go_to_stdout_and_exit_0() {
    let out = grace(Mode::Child, &["--help"]).output();
    assert_eq!(out.code, 0);
    assert!(out
        .stdout
        .contains("Usage: grace [OPTIONS] [--] PROGRAM [ARGS...]"));
    let out = grace(Mode::Child, &["-V"]).output();
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, concat!("grace ", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn leftovers_killed_after_the_program_exited_do_not_change_its_code() {
    need_namespaces!();
    let out = grace(
        Mode::Init,
        &["--drain", "200ms", &fixture("stubborn_child.sh"), "7"],
    )
    .output();
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("drain time over"), "{}", out.stderr);
}
