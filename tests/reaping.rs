//! Reaping: every orphan that comes to grace is reaped, as PID 1 and as a subreaper, and the
//! program's status is never lost among them.

mod common;

use std::time::Duration;

use common::{fixture, grace, Mode};

fn zombies_left(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("zombies "))
        .expect("zombies line");
    line.parse().unwrap()
}

#[test]
fn thousands_of_orphans_leave_no_zombie_as_pid_1() {
    need_namespaces!();
    // 2,000 orphans take a few seconds alone; the deadline allows for a busy CI machine.
    let out = grace(
        Mode::Init,
        &["python3", &fixture("orphans.py"), "2000", "60"],
    )
    .start()
    .wait(Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(zombies_left(&out.stdout), 0);
}

/// The negative control: the same fixture as PID 1 itself, with nobody reaping, does see
/// zombies. Without it, a broken zombie count would make the test above pass vacuously.
#[test]
fn without_grace_the_orphans_stay_zombies() {
    need_namespaces!();
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "python3"])
        .args([&fixture("orphans.py"), "50", "0.5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(zombies_left(&stdout), 50, "{stdout}");
}

#[test]
fn subreaper_mode_reaps_grandchildren() {
    need_namespaces!();
    let out = grace(
        Mode::Child,
        &["-v", "python3", &fixture("orphans.py"), "500", "20"],
    )
    .output();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(zombies_left(&out.stdout), 0);
    assert!(
        out.stderr.contains("became a child subreaper"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_programs_status_survives_a_crowd_of_exits_at_the_same_moment() {
    need_namespaces!();
    // 100 children exit together with the program; its own code must come through every time.
    let script = "for i in $(seq 100); do (exit 1) & done; exit 42";
    for _ in 0..20 {
        for mode in [Mode::Init, Mode::Child] {
            let out = grace(mode, &["sh", "-c", script]).output();
            assert_eq!(out.code, 42, "{}", out.stderr);
        }
    }
}

#[test]
fn memory_stays_flat_under_reaping_storms() {
    need_namespaces!();
    // Four storms of orphans. grace's RSS after the last may not exceed its RSS after the first
    // by more than a little: a leak of even 64 bytes per reap would add hundreds of kB.
    let g = grace(Mode::Init, &["python3", &fixture("storms.py"), "1000"]).start();
    g.expect_line("ready");
    let mut rss = vec![];
    for storm in 1..=4 {
        g.signal("USR1");
        g.expect_line(&format!("storm {storm} zombies 0"));
        rss.push(common::status_field(g.pid(), "VmRSS"));
    }
    g.signal("TERM");
    assert_eq!(g.wait(common::PATIENCE).code, 0);
    assert!(
        rss[3] <= rss[0] + 128,
        "VmRSS in kB after each storm: {rss:?}"
    );
}
