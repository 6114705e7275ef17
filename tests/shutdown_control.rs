//! Shutdown control: pre-stop hook, signal rewriting, exit-code mapping, parent-death signal,
//! and the stop summary.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, grace, Mode};

fn temp_file(tag: &str) -> String {
    let path = std::env::temp_dir().join(format!("grace-{tag}-{}", std::process::id()));
    _ = std::fs::remove_file(&path);
    path.display().to_string()
}

#[test]
fn the_hook_runs_to_completion_before_the_program_sees_the_signal() {
    need_namespaces!();
    let log = temp_file("hook-order");
    // The hook takes 300ms and records its end; the program records when TERM reaches it.
    let hook = format!("sh -c 'sleep 0.3; echo hook done >> {log}'");
    let program = format!("trap 'echo program got TERM >> {log}; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    let g = grace(
        Mode::Init,
        &["-v", "--pre-stop", &hook, "sh", "-c", &program],
    )
    .start();
    g.expect_line("ready");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hook done\nprogram got TERM\n"
    );
    assert!(
        out.stderr.contains("pre-stop hook exited with 0"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(log).unwrap();
}

#[test]
fn a_hanging_hook_is_cut_off_and_the_program_still_stops() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &[
            "--pre-stop",
            "sleep 1000",
            "--pre-stop-timeout",
            "500ms",
            &fixture("trap.sh"),
            "app",
        ],
    )
    .start();
    g.expect_line("app ready");
    let sent = Instant::now();
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let took = sent.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("app got TERM"));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(
        out.stderr.contains("pre-stop hook still running after 0.5"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_hook_never_outlives_the_grace_period() {
    need_namespaces!();
    // Hook timeout 60s, grace 1s, a program that ignores TERM: all over at ~1s with 137.
    let g = grace(
        Mode::Init,
        &[
            "-t",
            "1",
            "--pre-stop",
            "sleep 1000",
            "--pre-stop-timeout",
            "60",
            "sh",
            "-c",
            "trap '' TERM; echo ready; exec sleep 1000",
        ],
    )
    .start();
    g.expect_line("ready");
    let sent = Instant::now();
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert!(
        sent.elapsed() < Duration::from_secs(8),
        "{:?}",
        sent.elapsed()
    );
}

#[test]
fn a_hook_that_cannot_start_does_not_hold_up_the_stop() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &["--pre-stop", "/no/such/hook", &fixture("trap.sh"), "app"],
    )
    .start();
    g.expect_line("app ready");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("app got TERM"));
    assert!(
        out.stderr
            .contains("pre-stop hook: '/no/such/hook': command not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_hook_from_the_environment_with_shell_quoting() {
    need_namespaces!();
    let log = temp_file("hook-env");
    let g = grace(Mode::Init, &[&fixture("trap.sh"), "app"])
        .env(
            "GRACE_PRE_STOP",
            &format!("sh -c 'echo \"deregistered  twice\" > {log}'"),
        )
        .start();
    g.expect_line("app ready");
    g.signal("TERM");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "deregistered  twice\n"
    );
    std::fs::remove_file(log).unwrap();
}

#[test]
fn rewrites_apply_and_a_rewrite_to_0_drops_the_signal() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &[
            "--rewrite",
            "TERM:QUIT",
            "--rewrite",
            "HUP:0",
            "--rewrite",
            "SIGUSR1:12",
            "python3",
            &fixture("signals.py"),
            "SIGQUIT",
        ],
    )
    .start();
    g.expect_line("ready");
    g.signal("HUP"); // dropped
    g.signal("USR1"); // arrives as USR2
    g.expect_line("got SIGUSR2");
    g.signal("TERM"); // arrives as QUIT, which ends the fixture
    let out = g.wait(common::PATIENCE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = common::got_lines(&out.stdout);
    assert_eq!(got, ["got SIGUSR2", "got SIGQUIT"]);
}

#[test]
fn rewrites_from_the_environment() {
    need_namespaces!();
    let g = grace(Mode::Init, &["python3", &fixture("signals.py"), "SIGQUIT"])
        .env("GRACE_REWRITE", "TERM:QUIT,WINCH:0")
        .start();
    g.expect_line("ready");
    g.signal("WINCH");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let got = common::got_lines(&out.stdout);
    assert_eq!(got, ["got SIGQUIT"]);
}

#[test]
fn success_exit_maps_the_named_codes_and_only_those_for_all_256() {
    // Child mode: no namespace needed to check a mapping, and 512 runs stay fast.
    for code in 0..=255 {
        let script = format!("exit {code}");
        let mapped = grace(
            Mode::Child,
            &["--success-exit", &code.to_string(), "sh", "-c", &script],
        )
        .output();
        assert_eq!(mapped.code, 0, "{code}");
        let other = ((code + 1) % 256).to_string();
        let kept = grace(
            Mode::Child,
            &["--success-exit", &other, "sh", "-c", &script],
        )
        .output();
        assert_eq!(kept.code, code);
    }
}

#[test]
fn success_exit_covers_a_jvm_style_143_after_sigterm() {
    need_namespaces!();
    let g = grace(Mode::Init, &["sh", "-c", "echo ready; exec sleep 1000"])
        .env("GRACE_SUCCESS_EXIT", "143")
        .start();
    g.expect_line("ready");
    g.signal("TERM");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
}

#[test]
fn pdeathsig_stops_the_program_when_graces_parent_dies() {
    // grace's parent is a python process that we SIGKILL; the kernel then sends grace SIGTERM,
    // which it forwards to the program like any stop signal.
    let parent = [
        "python3",
        "-c",
        "import subprocess, sys, time\nsubprocess.Popen(sys.argv[1:])\ntime.sleep(1000)",
    ];
    let g = grace(
        Mode::Child,
        &["--pdeathsig", "TERM", &fixture("trap.sh"), "app"],
    )
    .through(&parent)
    .start();
    g.expect_line("app ready");
    g.signal("KILL"); // the parent
    g.expect_line("app got TERM");
}

#[test]
fn the_stop_summary_says_what_happened() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &["-v", "--pre-stop", "true", &fixture("trap.sh"), "app"],
    )
    .start();
    g.expect_line("app ready");
    g.signal("TERM");
    let out = g.wait(common::PATIENCE);
    let summary = out.stderr.lines().last().unwrap();
    assert!(
        summary.starts_with("[grace INFO] exiting with 0: stopped by SIGTERM, pre-stop hook "),
        "{summary}"
    );
    assert!(
        summary.contains("(exit 0), program exited after "),
        "{summary}"
    );
    assert!(summary.contains("nothing killed"), "{summary}");
}

#[test]
fn every_option_rejects_a_bad_value_with_exit_2_and_one_line() {
    let bad: &[&[&str]] = &[
        &["--grace", "x"],
        &["--drain", "-1"],
        &["--pre-stop", "'"],
        &["--pre-stop-timeout", "1y"],
        &["--rewrite", "TERM:"],
        &["--rewrite", "KILL:TERM"],
        &["--success-exit", "-3"],
        &["--pdeathsig", "SIGNOPE"],
    ];
    for args in bad {
        let mut all = args.to_vec();
        all.push("true");
        let out = grace(Mode::Child, &all).output();
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("grace: invalid {}", args[0])),
            "{}",
            out.stderr
        );
    }
}
