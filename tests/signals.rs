//! Forwarding: every catchable asynchronous signal reaches the program; fault signals never do.
//!
//! As PID 1 of a namespace, grace only receives signals it has a handler for (pid_namespaces(7)),
//! so "the program saw it" also proves grace installed the handler.

mod common;

use common::{fixture, grace, Mode};

/// What kill(1) calls them, and what the fixture prints.
const FORWARDED: &[(&str, &str)] = &[
    ("HUP", "SIGHUP"),
    ("INT", "SIGINT"),
    ("QUIT", "SIGQUIT"),
    ("USR1", "SIGUSR1"),
    ("USR2", "SIGUSR2"),
    ("ALRM", "SIGALRM"),
    ("WINCH", "SIGWINCH"),
    ("CONT", "SIGCONT"),
    ("URG", "SIGURG"),
    ("PWR", "SIGPWR"),
    ("TSTP", "SIGTSTP"),
    ("RTMIN", "SIGRTMIN"),
    ("RTMIN+1", "SIGRTMIN+1"),
    ("RTMIN+5", "SIGRTMIN+5"),
    ("64", "SIGRTMIN+30"), // SIGRTMAX on glibc
    ("TERM", "SIGTERM"),
];

#[test]
fn every_forwardable_signal_arrives_in_order() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let g = grace(mode, &["python3", &fixture("signals.py")]).start();
        g.expect_line("ready");
        for (kill_name, shown) in FORWARDED {
            g.signal(kill_name);
            // One at a time, each acknowledged before the next: the order is the order sent.
            g.expect_line(&format!("got {shown}"));
        }
        let out = g.wait(common::PATIENCE);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let got: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("got "))
            .collect();
        let sent: Vec<&str> = FORWARDED.iter().map(|(_, shown)| *shown).collect();
        assert_eq!(got, sent);
    }
}

#[test]
fn a_burst_of_distinct_signals_loses_none() {
    need_namespaces!();
    let g = grace(Mode::Init, &["python3", &fixture("signals.py"), "SIGUSR2"]).start();
    g.expect_line("ready");
    let burst = [
        "HUP", "WINCH", "ALRM", "RTMIN", "RTMIN+1", "RTMIN+2", "RTMIN+3", "USR1",
    ];
    for sig in burst {
        g.signal(sig);
    }
    for shown in [
        "SIGHUP",
        "SIGWINCH",
        "SIGALRM",
        "SIGRTMIN",
        "SIGRTMIN+1",
        "SIGRTMIN+2",
        "SIGRTMIN+3",
        "SIGUSR1",
    ] {
        g.expect_line(&format!("got {shown}"));
    }
    g.signal("USR2");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
}

#[test]
fn fault_and_terminal_output_signals_are_never_forwarded() {
    need_namespaces!();
    let g = grace(Mode::Init, &["python3", &fixture("signals.py")]).start();
    g.expect_line("ready");
    // Aimed at PID 1 from outside: without a handler the kernel drops them, so grace neither
    // dies nor forwards. HUP afterwards is the marker that everything before it was processed.
    for sig in [
        "SEGV", "ILL", "BUS", "FPE", "ABRT", "TRAP", "SYS", "TTIN", "TTOU", "HUP",
    ] {
        g.signal(sig);
    }
    g.expect_line("got SIGHUP");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = common::got_lines(&out.stdout);
    assert_eq!(got, ["got SIGHUP", "got SIGTERM"]);
}

/// The program (signals.py, which never exits on HUP) starts a helper in its process group.
fn program_with_a_helper() -> String {
    format!(
        "{} helper HUP & exec python3 {}",
        fixture("trap.sh"),
        fixture("signals.py")
    )
}

/// Execs its arguments with stderr on a pipe nobody reads: every write there raises SIGPIPE.
const STDERR_TO_A_BROKEN_PIPE: &[&str] = &[
    "python3",
    "-c",
    "import os, sys\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, 2)\nos.execvp(sys.argv[1], sys.argv[1:])",
];

#[test]
fn sigpipe_from_someone_else_is_forwarded_but_not_one_from_graces_own_writes() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        // -vv: grace logs every signal to its broken stderr, raising SIGPIPE on itself each time.
        let g = grace(mode, &["-vv", "python3", &fixture("signals.py")])
            .through(STDERR_TO_A_BROKEN_PIPE)
            .start();
        g.expect_line("signals.py ready");
        g.signal("HUP");
        g.expect_line("got SIGHUP");
        g.signal("PIPE");
        g.expect_line("got SIGPIPE");
        g.signal("TERM");
        let out = g.wait(common::PATIENCE);
        assert_eq!(out.code, 0);
        let got = common::got_lines(&out.stdout);
        assert_eq!(
            got,
            ["got SIGHUP", "got SIGPIPE", "got SIGTERM"],
            "only the one we sent"
        );
    }
}

#[test]
fn group_mode_signals_the_whole_process_group_and_default_mode_the_program_alone() {
    need_namespaces!();
    for (flag, helper_gets_it) in [(None, false), (Some("-g"), true)] {
        let script = program_with_a_helper();
        let mut args = vec![];
        args.extend(flag);
        args.extend(["sh", "-c", &script]);
        let g = grace(Mode::Init, &args).start();
        g.expect_line("helper ready");
        g.expect_line("signals.py ready");
        g.signal("HUP");
        g.expect_line("got SIGHUP");
        if helper_gets_it {
            g.expect_line("helper got HUP");
        }
        g.signal("TERM");
        let out = g.wait(common::PATIENCE);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout.contains("helper got HUP"),
            helper_gets_it,
            "{flag:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn group_mode_from_the_environment() {
    need_namespaces!();
    let g = grace(Mode::Init, &["sh", "-c", &program_with_a_helper()])
        .env("GRACE_GROUP", "1")
        .start();
    g.expect_line("helper ready");
    g.expect_line("signals.py ready");
    g.signal("HUP");
    g.expect_line("got SIGHUP");
    g.expect_line("helper got HUP");
    g.signal("TERM");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
}

#[test]
fn a_stop_signal_racing_the_programs_exit_is_not_an_error() {
    need_namespaces!();
    // The program exits on TERM at once; more signals land while it is a zombie or gone.
    let g = grace(
        Mode::Init,
        &["-v", &fixture("trap.sh"), "app", "TERM HUP USR1 INT"],
    )
    .start();
    g.expect_line("app ready");
    for sig in ["TERM", "HUP", "USR1", "TERM", "INT"] {
        // grace may be gone before the last ones: then kill(1) fails, which is fine here.
        g.try_signal(sig);
    }
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
}
