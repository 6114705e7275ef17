//! Drop-in compatibility: grace invoked as `tini`/`docker-init` or `dumb-init` behaves as the
//! original does, checked side by side against the real tini 0.19 and dumb-init 1.2.5 (Debian
//! packages) wherever they are installed.

mod common;

use std::process::Command;

use common::{fixture, grace_as, init, Mode, PATIENCE};

/// The real tool, or `None` (skipped, failing under CI) when it is not installed.
fn real(name: &str) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8(found.stdout).ok()?.trim().to_string();
    if path.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {name} is not installed"
        );
        eprintln!("skipped: {name} is not installed (apt-get install {name})");
        return None;
    }
    Some(path)
}

/// `(exit code, stdout, stderr)` of `binary args` as PID 1.
fn outcome(binary: &str, args: &[&str]) -> (i32, String, String) {
    let out = init(binary, Mode::Init, args).output();
    (out.code, out.stdout, out.stderr)
}

#[test]
fn exit_codes_match_tini_and_dumb_init() {
    need_namespaces!();
    let (Some(tini), Some(dumb)) = (real("tini"), real("dumb-init")) else {
        return;
    };
    let cases: &[&[&str]] = &[
        &["--", "sh", "-c", "exit 0"],
        &["--", "sh", "-c", "exit 3"],
        &["--", "sh", "-c", "exit 255"],
        &["--", "sh", "-c", "kill -TERM $$"],
        &["--", "sh", "-c", "kill -KILL $$"],
        &["--", "/no/such/program"],
        &["--", "/etc/hostname/not-a-dir"],
        &[],
        &["-Z", "true"],
    ];
    for (original, name) in [
        (&tini, "tini"),
        (&tini, "docker-init"),
        (&dumb, "dumb-init"),
    ] {
        for args in cases {
            let theirs = outcome(original, args).0;
            let ours = outcome(&grace_as(name), args).0;
            assert_eq!(ours, theirs, "{name} {args:?}");
        }
    }
}

#[test]
fn tini_remaps_exit_codes_with_e() {
    need_namespaces!();
    let Some(tini) = real("tini") else { return };
    for args in [
        &["-e", "3", "--", "sh", "-c", "exit 3"][..],
        &["-e", "3", "-e", "4", "--", "sh", "-c", "exit 4"],
        &["-e", "3", "--", "sh", "-c", "exit 5"],
    ] {
        assert_eq!(
            outcome(&grace_as("tini"), args).0,
            outcome(&tini, args).0,
            "{args:?}"
        );
    }
}

#[test]
fn version_lines_are_where_docker_and_users_look() {
    let Some(tini) = real("tini") else { return };
    let Some(dumb) = real("dumb-init") else {
        return;
    };
    // Docker's `docker info` runs `docker-init --version` and parses stdout.
    let ours = Command::new(grace_as("docker-init"))
        .arg("--version")
        .output()
        .unwrap();
    let theirs = Command::new(&tini).arg("--version").output().unwrap();
    let ours_out = String::from_utf8(ours.stdout).unwrap();
    assert!(
        ours_out.starts_with("tini version 0.19.0 - git."),
        "{ours_out}"
    );
    assert!(String::from_utf8(theirs.stdout)
        .unwrap()
        .starts_with("tini version 0.19.0"));
    assert!(ours.status.success() && ours.stderr.is_empty());
    // dumb-init prints its version on stderr.
    let ours = Command::new(grace_as("dumb-init"))
        .arg("--version")
        .output()
        .unwrap();
    let theirs = Command::new(&dumb).arg("--version").output().unwrap();
    assert_eq!((ours.stdout, ours.stderr), (theirs.stdout, theirs.stderr));
}

/// Whether a SIGTERM sent to the init reaches the program's whole process group (see
/// fixtures/group_probe.sh).
fn helper_gets_the_signal(binary: &str, args: &[&str], env: &[(&str, &str)]) -> bool {
    let probe = fixture("group_probe.sh");
    let mut all: Vec<&str> = args.to_vec();
    all.push(&probe);
    let mut run = init(binary, Mode::Init, &all);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let g = run.start();
    g.expect_line("helper ready");
    g.expect_line("probe ready");
    g.signal("TERM");
    let out = g.wait(PATIENCE);
    assert_eq!(out.code, 0, "{binary} {args:?}: {}", out.stderr);
    // The helper may run its WINCH trap too before it exits; the first one it ran tells.
    let first = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("helper got "));
    match first {
        Some("TERM") => true,
        Some("WINCH") => false,
        _ => panic!(
            "{binary} {args:?}: the helper reported no signal:\n{}",
            out.stdout
        ),
    }
}

#[test]
fn who_gets_a_signal_matches_the_originals() {
    need_namespaces!();
    let (Some(tini), Some(dumb)) = (real("tini"), real("dumb-init")) else {
        return;
    };
    // (original, name, args, env, whether the group gets it per the originals' docs): the
    // expectation column keeps the probe honest, the comparison keeps grace honest.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        bool,
    );
    let cases: &[Case] = &[
        (&tini, "tini", &["--"], &[], false),
        (&tini, "tini", &["-g", "--"], &[], true),
        (
            &tini,
            "tini",
            &["--"],
            &[("TINI_KILL_PROCESS_GROUP", "1")],
            true,
        ),
        (&dumb, "dumb-init", &[], &[], true),
        (&dumb, "dumb-init", &["-c"], &[], false),
        (&dumb, "dumb-init", &["--single-child"], &[], false),
        (&dumb, "dumb-init", &[], &[("DUMB_INIT_SETSID", "0")], false),
    ];
    for (original, name, args, env, documented) in cases {
        let theirs = helper_gets_the_signal(original, args, env);
        assert_eq!(
            theirs, *documented,
            "{original} {args:?} {env:?} vs. its documentation"
        );
        let ours = helper_gets_the_signal(&grace_as(name), args, env);
        assert_eq!(
            ours, theirs,
            "grace as {name} {args:?} {env:?}: does the group get TERM?"
        );
    }
}

#[test]
fn dumb_init_rewrites_and_drops_like_dumb_init() {
    need_namespaces!();
    let Some(dumb) = real("dumb-init") else {
        return;
    };
    // TERM becomes USR1 (10); HUP (1) is dropped; the fixture exits on USR1.
    let args = [
        "-c",
        "-r",
        "15:10",
        "-r",
        "1:0",
        "python3",
        &fixture("signals.py"),
        "SIGUSR1",
    ];
    for binary in [dumb.clone(), grace_as("dumb-init")] {
        let g = init(&binary, Mode::Init, &args).start();
        g.expect_line("signals.py ready");
        g.signal("HUP");
        g.signal("TERM");
        let out = g.wait(PATIENCE);
        let got = common::got_lines(&out.stdout);
        assert_eq!((out.code, got), (0, vec!["got SIGUSR1"]), "{binary}");
    }
}

#[test]
fn tini_w_warns_about_reaped_zombies_and_p_sets_the_parent_death_signal() {
    need_namespaces!();
    let out = init(
        &grace_as("tini"),
        Mode::Init,
        &["-w", "--", "sh", "-c", "(sleep 0 &); sleep 0.2"],
    )
    .output();
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("WARN] reaped pid"), "{}", out.stderr);
    // -p: kill grace's parent, the program gets the signal.
    let parent = [
        "python3",
        "-c",
        "import subprocess, sys, time\nsubprocess.Popen(sys.argv[1:])\ntime.sleep(1000)",
    ];
    let g = init(
        &grace_as("tini"),
        Mode::Child,
        &["-s", "-p", "SIGTERM", "--", &fixture("trap.sh"), "app"],
    )
    .through(&parent)
    .start();
    g.expect_line("app ready");
    g.signal("KILL");
    g.expect_line("app got TERM");
}

#[test]
fn docker_style_invocation_with_grace_options_from_the_environment() {
    need_namespaces!();
    // Docker runs `docker-init -- PROGRAM ARGS`; GRACE_* still apply under that name.
    let g = init(
        &grace_as("docker-init"),
        Mode::Init,
        &[
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo ready; exec sleep 1000",
        ],
    )
    .env("GRACE_TIMEOUT", "500ms")
    .start();
    g.expect_line("ready");
    g.signal("TERM");
    let out = g.wait(PATIENCE);
    assert_eq!(out.code, 137);
    assert!(out.stderr.contains("grace period over"), "{}", out.stderr);
}
