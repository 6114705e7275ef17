//! The stop cascade: stop signal to the program first, SIGTERM and a drain time for whatever is
//! left, SIGKILL only at a deadline.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, grace, Mode};

#[test]
fn shell_wrapper_dies_on_sigterm_and_the_app_still_gets_its_own_sigterm() {
    need_namespaces!();
    // Shell-form CMD: sh is the program, app its child. sh dies on SIGTERM without passing it
    // on; the cascade then gives app a SIGTERM of its own instead of the kernel's SIGKILL.
    for mode in [Mode::Init, Mode::Child] {
        let script = format!("{} app; echo done", fixture("trap.sh"));
        let g = grace(mode, &["sh", "-c", &script]).start();
        g.expect_line("app ready");
        g.signal("TERM");
        let out = g.wait(common::PATIENCE);
        assert!(out.stdout.contains("app got TERM"), "{}", out.stdout);
        assert!(
            !out.stdout.contains("done"),
            "sh died before its next command"
        );
        assert_eq!(
            out.code, 143,
            "the program (sh) was killed by SIGTERM: {}",
            out.stderr
        );
    }
}

#[test]
fn a_leftover_background_process_gets_sigterm_before_sigkill() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let script = format!(
            "{} bg & exec {} main",
            fixture("trap.sh"),
            fixture("trap.sh")
        );
        let g = grace(mode, &["-v", "sh", "-c", &script]).start();
        g.expect_line("bg ready");
        g.expect_line("main ready");
        g.signal("TERM");
        let out = g.wait(common::PATIENCE);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("main got TERM"));
        assert!(
            out.stdout.contains("bg got TERM"),
            "drained with SIGTERM: {}",
            out.stdout
        );
        assert!(!out.stderr.contains("sent SIGKILL"), "{}", out.stderr);
    }
}

#[test]
fn a_program_exiting_by_itself_drains_its_daemons_too() {
    need_namespaces!();
    // A daemon-style program: forks a background writer and exits 0 at once.
    let script = format!("{} writer & sleep 0.2; exit 0", fixture("trap.sh"));
    let out = grace(Mode::Init, &["sh", "-c", &script]).output();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("writer got TERM"), "{}", out.stdout);
}

#[test]
fn a_leftover_ignoring_sigterm_is_killed_when_the_drain_ends() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let started = Instant::now();
        let out = grace(mode, &["--drain", "1", &fixture("stubborn_child.sh"), "3"]).output();
        let took = started.elapsed();
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(
            took >= Duration::from_millis(950),
            "killed before the drain ended: {took:?}"
        );
        assert!(took < Duration::from_secs(8), "{took:?}");
        let kills: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("SIGKILL"))
            .collect();
        assert_eq!(kills.len(), 1, "{}", out.stderr);
        assert!(
            kills[0].contains("drain time over") && kills[0].contains("(sleep)"),
            "{}",
            kills[0]
        );
    }
}

#[test]
fn zero_drain_kills_leftovers_at_once() {
    need_namespaces!();
    let out = grace(
        Mode::Init,
        &["--drain", "0", &fixture("stubborn_child.sh"), "0"],
    )
    .output();
    assert_eq!(out.code, 0);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(out.stderr.contains("SIGKILL"), "{}", out.stderr);
}

#[test]
fn the_grace_deadline_also_cuts_the_drain_short() {
    need_namespaces!();
    // Program stops at once on TERM, its child ignores TERM; drain 60s, grace 1s: killed at ~1s.
    let script = format!(
        "{} 0; exec {} main",
        fixture("stubborn_child.sh"),
        fixture("trap.sh")
    );
    let g = grace(
        Mode::Init,
        &["-t", "1", "--drain", "60", "sh", "-c", &script],
    )
    .start();
    g.expect_line("main ready");
    let sent = Instant::now();
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let took = sent.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

#[test]
fn a_second_stop_signal_is_forwarded_but_does_not_restart_the_clock() {
    need_namespaces!();
    // The program counts TERMs but never stops; -t 3. A second TERM at ~2s that restarted the
    // clock would push the kill to ~5s.
    let g = grace(
        Mode::Init,
        &["-t", "3", "python3", &fixture("signals.py"), "NEVER"],
    )
    .start();
    g.expect_line("ready");
    let first = Instant::now();
    g.signal("TERM");
    g.expect_line("got SIGTERM");
    while first.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20)); // pacing the test's own second signal
    }
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let took = first.elapsed();
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert_eq!(
        out.stdout.matches("got SIGTERM").count(),
        2,
        "both forwarded: {}",
        out.stdout
    );
    assert!(
        took < Duration::from_millis(4500),
        "clock restarted? killed after {took:?}"
    );
    assert!(took >= Duration::from_millis(2950), "{took:?}");
}

#[test]
fn grace_timeout_from_the_environment() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &["sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"],
    )
    .env("GRACE_TIMEOUT", "500ms")
    .start();
    g.expect_line("ready");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 137);
    assert!(
        out.stderr.contains("grace period over after 0.5"),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_grace_timeout_grace_never_kills_the_program_itself() {
    need_namespaces!();
    // No -t: the runtime decides. After TERM the program ignores, grace waits; it is still
    // running 1.5s later, when a KILL from "the runtime" (us) ends the program.
    let g = grace(Mode::Init, &["python3", &fixture("signals.py"), "NEVER"]).start();
    g.expect_line("ready");
    g.signal("TERM");
    g.expect_line("got SIGTERM");
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(g.try_signal("0"), "grace gave up on its own");
    g.signal("KILL"); // as docker does at its own timeout
    let _ = g.wait(common::PATIENCE);
}
