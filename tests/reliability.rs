//! Reliability: faults, storms and bad input. PID 1 must never die, hang, or lose a status.
//!
//! Every test here is bounded in time and in the processes it makes. `GRACE_SOAK=1` runs the
//! storm and race tests for longer (see docs/reliability.md). Each test prints one `figures:`
//! line on stderr (`cargo nextest run --test reliability --no-capture` shows them).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::libc;

use common::{grace, Mode, PATIENCE};

/// Whether GRACE_SOAK asks for the long runs.
fn soak() -> bool {
    std::env::var_os("GRACE_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compiles tests/fixtures/NAME.c into the target's temp dir, once per source change. Tests run
/// in parallel processes, so each compiles to a name of its own and renames (atomic) into place.
fn compile(name: &str) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fixture-{name}"));
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&out).is_none() || modified(&out) < modified(&src) {
        let tmp = out.with_extension(format!("{}.tmp", std::process::id()));
        let status = Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run gcc");
        assert!(status.success(), "gcc failed on {}", src.display());
        fs::rename(&tmp, &out).unwrap();
    }
    out.display().to_string()
}

/// kill(2) with a raw number: nix's `Signal` cannot name the real-time signals, and one
/// `kill` process per signal is far too slow for a storm.
fn send(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    match unsafe { libc::kill(pid, sig) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// A small deterministic generator (xorshift64*): the tests replay the same "random" choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The forwardable signals the storm uses (SIGRTMAX and SIGRTMAX-1 are the fixture's fence and
/// finish signals, so they are left out).
fn storm_kinds() -> Vec<i32> {
    let mut kinds = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
    ];
    kinds.extend(libc::SIGRTMIN()..libc::SIGRTMIN() + 8);
    kinds.push(libc::SIGRTMAX() - 2);
    kinds
}

/// Signals grace must never pass on: the faults (aimed at PID 1 from outside, the kernel drops
/// them), TTIN/TTOU (grace ignores them) and CHLD (grace reaps). A SIGPIPE someone sends is
/// forwarded, so it is among the storm's kinds.
const NOISE: [i32; 10] = [
    libc::SIGCHLD,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGSEGV,
    libc::SIGILL,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// `fence N zombies Z SIGNO:COUNT ...` → (Z, counts).
fn parse_fence(line: &str) -> (usize, BTreeMap<i32, u64>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[2], "zombies", "{line}");
    let zombies = words[3].parse().unwrap();
    let counts = words[4..]
        .iter()
        .map(|w| {
            let (sig, n) = w.split_once(':').unwrap();
            (sig.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    (zombies, counts)
}

/// "No distinct signal lost", honestly: standard signals do not queue (a second SIGHUP pending
/// at grace, or at the program, merges with the first), so a count can only be checked per
/// kind. Nor is arrival order kept for signals pending together: the kernel hands them out
/// lowest number first (and grace's earlier signal-hook thread let a later signal overtake
/// earlier ones by whole rounds; measured below as "late"). So the test sends in rounds: after
/// each burst it sends fences (SIGRTMAX; the program reports what it counted since the last
/// fence) until every kind sent in the round has reached the program, within a deadline. No
/// kind may arrive more often in all than it was sent, and no signal grace must not forward may
/// arrive. Real-time signals do queue in the kernel; how many of them arrive is reported.
#[test]
fn a_signal_storm_while_the_program_forks_loses_no_kind_and_leaks_nothing() {
    need_namespaces!();
    let storm = compile("storm");
    let (fence, finish) = (libc::SIGRTMAX(), libc::SIGRTMAX() - 1);
    let kinds = storm_kinds();
    let (rounds, per_round) = if soak() { (20_000, 1000) } else { (1000, 1000) };
    let started = Instant::now();
    // Not the harness: it keeps all of stdout and scans it for every line, and a soak run
    // prints tens of thousands of fence lines.
    let args = [
        storm.as_str(),
        &fence.to_string(),
        &finish.to_string(),
        "42",
    ];
    let mut g = Raw::start(Mode::Init, &args, Stdio::inherit());
    g.expect_line("storm ready");
    let pid = g.pid(Mode::Init);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = BTreeMap::<i32, u64>::new();
    let mut delivered = BTreeMap::<i32, u64>::new();
    let (mut fences, mut late, mut max_zombies, mut rss) = (0usize, 0usize, 0usize, vec![]);
    for round in 1..=rounds {
        let kinds_now = round_kinds(&kinds, round);
        let sent_now = send_burst(pid, &kinds_now, per_round, &mut rng);
        let mut got_now = BTreeMap::<i32, u64>::new();
        let deadline = Instant::now() + PATIENCE;
        while sent_now
            .keys()
            .any(|k| kinds.contains(k) && !got_now.contains_key(k))
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: sent {sent_now:?}, only {got_now:?} arrived within {PATIENCE:?}"
            );
            fences += 1;
            send(pid, fence).unwrap();
            let (zombies, counts) = parse_fence(&g.expect_line(&format!("fence {fences} ")));
            max_zombies = max_zombies.max(zombies);
            for (sig, n) in counts {
                *got_now.entry(sig).or_default() += n;
            }
        }
        for sig in NOISE {
            assert!(
                !got_now.contains_key(&sig),
                "round {round}: signal {sig} must never be forwarded; got {got_now:?}"
            );
        }
        // A kind this round did not send can only be a late one from the round before.
        late += usize::from(got_now.keys().any(|k| !sent_now.contains_key(k)));
        for (sig, n) in sent_now {
            *sent.entry(sig).or_default() += n;
        }
        for (sig, n) in got_now {
            *delivered.entry(sig).or_default() += n;
        }
        for (sig, n) in &delivered {
            assert!(
                *n <= sent.get(sig).copied().unwrap_or(0),
                "signal {sig}: delivered {n} times, sent only {:?}",
                sent.get(sig)
            );
        }
        rss.push(common::status_field(pid, "VmRSS"));
    }
    let hwm = common::status_field(pid, "VmHWM");
    send(pid, finish).unwrap();
    let tail = g.expect_line("orphans ");
    let churner_died = g.line_within("churner died", Duration::ZERO);
    assert_eq!(g.wait(), Some(42), "the program's own status");
    let words: Vec<&str> = tail.split_whitespace().collect();
    let (orphans, zombies_left): (u64, usize) =
        (words[1].parse().unwrap(), words[3].parse().unwrap());
    assert_eq!(
        zombies_left, 0,
        "zombies left once the churn stopped: {tail}"
    );
    assert!(orphans >= 100, "the churner barely ran: {tail}");
    assert_eq!(churner_died, None);
    // Warm-up: the first rounds grow the channel and the allocator's arenas; after that RSS
    // must stay flat, whatever the number of rounds.
    let warm = rss[rss.len() / 4];
    let last = *rss.last().unwrap();
    assert!(
        last <= warm + 256,
        "VmRSS grew from {warm} kB to {last} kB: {rss:?}"
    );
    let rt = |m: &BTreeMap<i32, u64>| -> u64 {
        m.iter()
            .filter(|(k, _)| **k >= libc::SIGRTMIN())
            .map(|(_, n)| n)
            .sum()
    };
    let fwd_sent: u64 = kinds.iter().filter_map(|k| sent.get(k)).sum();
    eprintln!(
        "figures: storm of {rounds} rounds in {:.1}s: {} signals sent to grace ({fwd_sent} \
         forwardable, {} real-time), {fences} fences; {} delivered to the program ({} real-time); \
         rounds with a late kind: {late}; {orphans} orphans reaped; zombies at most {max_zombies} \
         during, 0 after; grace VmRSS {warm}..{last} kB, VmHWM {hwm} kB",
        started.elapsed().as_secs_f64(),
        sent.values().sum::<u64>(),
        rt(&sent),
        delivered.values().sum::<u64>(),
        rt(&delivered),
    );
}

/// The kinds a round sends: all but one (rotating, so that a late arrival from the round before
/// can be told apart), the noise, and never SIGCONT next to a stop signal. Generating a stop
/// signal (TSTP, TTIN, TTOU) discards a SIGCONT pending at the same process, and SIGCONT
/// discards pending stop signals (signal(7)), even ignored ones: sent together, CONT could
/// vanish at grace or at the program whatever grace did. So rounds cycle through CONT, neither,
/// the stop signals, neither; the quiet round between keeps a late one from cancelling the next.
fn round_kinds(kinds: &[i32], round: usize) -> Vec<i32> {
    let stops = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
    let left_out = kinds[round % kinds.len()];
    kinds
        .iter()
        .chain(&NOISE)
        .copied()
        .filter(|s| *s != left_out)
        .filter(|s| *s != libc::SIGCONT || round % 4 == 0)
        .filter(|s| !stops.contains(s) || round % 4 == 2)
        .collect()
}

/// Sends `n` signals drawn from `kinds` to `pid`; returns how many of each were sent.
fn send_burst(pid: i32, kinds: &[i32], n: usize, rng: &mut Rng) -> BTreeMap<i32, u64> {
    let mut sent = BTreeMap::new();
    for _ in 0..n {
        let sig = kinds[rng.below(kinds.len() as u64) as usize];
        match send(pid, sig) {
            Ok(()) => *sent.entry(sig).or_default() += 1,
            // A real-time signal's queue is full: it was not sent, so it is not owed.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            Err(e) => panic!("kill({pid}, {sig}): {e} (grace died?)"),
        }
    }
    sent
}

/// SEGV and BUS aimed at PID 1 from outside are dropped (the program never sees them;
/// tests/signals.rs). In a burst they must not crash grace either.
/// Found crashing grace while it still used signal handlers: the Rust runtime's SEGV/BUS handler
/// runs on a small alternate stack, the forwarded signals' handlers nested on top of it
/// overflowed it, and the kernel killed PID 1 with SIGSEGV.
#[test]
fn a_burst_holding_sigsegv_or_sigbus_does_not_crash_grace() {
    need_namespaces!();
    let storm = compile("storm");
    let (fence, finish) = (libc::SIGRTMAX(), libc::SIGRTMAX() - 1);
    let burst = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGHUP,
        libc::SIGWINCH,
        libc::SIGRTMIN(),
        libc::SIGRTMIN() + 1,
    ];
    for fault in [libc::SIGSEGV, libc::SIGBUS] {
        for attempt in 0..10 {
            let g = grace(
                Mode::Init,
                &[&storm, &fence.to_string(), &finish.to_string(), "42"],
            )
            .start();
            g.expect_line("storm ready");
            let pid = g.pid();
            let mut alive = true;
            for i in 0..300 {
                let sigs: &[i32] = if i == 150 { &[fault] } else { &burst };
                for &sig in sigs {
                    alive &= send(pid, sig).is_ok();
                }
            }
            alive &= send(pid, finish).is_ok();
            let out = g.wait(PATIENCE);
            assert!(
                alive && out.code == 42,
                "signal {fault}, attempt {attempt}: grace died (exit {}); stderr: {}",
                out.code,
                out.stderr
            );
        }
    }
}

/// The negative control of the storm fixture's zombie count: as PID 1 itself, with nobody
/// reaping, it does count its orphans as zombies.
#[test]
fn without_a_reaper_the_storm_fixture_counts_zombies() {
    need_namespaces!();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .args([&compile("storm"), "--control", "40"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "zombies 40\n");
    let with_grace = grace(Mode::Init, &[&compile("storm"), "--control", "40"]).output();
    assert_eq!(with_grace.stdout, "zombies 0\n");
}

// ---- fork exhaustion -------------------------------------------------------------------------

/// A pids cgroup (v1 or v2) of our own with `pids.max = limit`, removed on drop. `None` where
/// the cgroup file system is not writable.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn create(limit: u32) -> Option<PidsCgroup> {
        let name = format!("grace-reliability-{}", std::process::id());
        let dir = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .iter()
            .map(|root| Path::new(root).join(&name))
            .find(|dir| fs::create_dir(dir).is_ok())?;
        let cg = PidsCgroup(dir);
        fs::write(cg.0.join("pids.max"), limit.to_string()).ok()?;
        Some(cg)
    }

    /// argv that moves itself into the cgroup, then execs the rest (so grace stays PID 1).
    fn enter(&self) -> Vec<String> {
        let procs = self.0.join("cgroup.procs");
        vec![
            "sh".into(),
            "-c".into(),
            format!("echo 0 > {} && exec \"$@\"", procs.display()),
            "sh".into(),
        ]
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The namespace dies with grace; its processes leave the cgroup as they are reaped.
        let deadline = Instant::now() + PATIENCE;
        while fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The program exhausts its process limit, frees it (only grace's reaping can), exhausts it
/// again and holds it; grace forwards, stops on SIGTERM, drains and exits with the status.
fn exhaust_under(wrapper: &[String], what: &str) {
    let bomb = compile("forkbomb");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let started = Instant::now();
    let g = grace(Mode::Init, &["-v", &bomb]).through(&wrapper).start();
    let hit = g.expect_line("limit hit after");
    assert!(hit.contains("(EAGAIN)"), "{hit}");
    let again = g.expect_line("reaping: ");
    assert!(
        again.contains("all reaped"),
        "{what}: grace did not reap: {again}"
    );
    let holding = g.expect_line("holding ");
    // Every PID the first round used came back: only grace's reaping frees them.
    let orphans = |line: &str| -> usize {
        let n = line.split_whitespace().find_map(|w| w.parse().ok());
        n.unwrap_or_else(|| panic!("no number in {line:?}"))
    };
    assert!(
        orphans(&holding) + 2 >= orphans(&hit),
        "{what}: {hit}, then {holding}"
    );
    // At the limit, grace still forwards...
    g.signal("HUP");
    g.expect_line(&format!("got {}", libc::SIGHUP));
    // ...and stops cleanly: the program exits on TERM, its orphans get the drain's SIGTERM.
    let stop = Instant::now();
    g.signal("TERM");
    let out = g.wait(PATIENCE);
    let took = stop.elapsed();
    assert_eq!(out.code, 0, "{what}: {}", out.stderr);
    assert!(
        out.stderr.contains("others got SIGTERM"),
        "{what}: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nothing killed"),
        "{what}: {}",
        out.stderr
    );
    assert!(took < Duration::from_secs(5), "{what}: stop took {took:?}");
    eprintln!(
        "figures: fork exhaustion under {what}: {hit}; {again}; {holding}; stopped in {:.0} ms \
         (run {:.1}s)",
        took.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn fork_exhaustion_under_a_pids_cgroup() {
    need_namespaces!();
    let Some(cgroup) = PidsCgroup::create(64) else {
        eprintln!("skipped: cannot create a pids cgroup here (the RLIMIT_NPROC test still runs)");
        return;
    };
    exhaust_under(&cgroup.enter(), "pids.max = 64");
}

/// Root ignores RLIMIT_NPROC, so grace (still PID 1) and its program run as `nobody`.
#[test]
fn fork_exhaustion_under_rlimit_nproc() {
    need_namespaces!();
    let wrapper: Vec<String> = [
        "prlimit",
        "--nproc=64:64",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .map(String::from)
    .to_vec();
    exhaust_under(&wrapper, "RLIMIT_NPROC = 64 as uid 65534");
}

// ---- stdout and stderr -----------------------------------------------------------------------

/// grace started by hand, for runs whose stderr the harness cannot provide.
struct Raw {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Raw {
    /// Starts grace (as PID 1 with `Mode::Init`) with `stderr` as its standard error.
    fn start(mode: Mode, args: &[&str], stderr: Stdio) -> Raw {
        Raw::start_with(mode, args, Stdio::null(), stderr)
    }

    fn start_with(mode: Mode, args: &[&str], stdin: Stdio, stderr: Stdio) -> Raw {
        // If the test is killed (a nextest time-out), its Drop never runs: the parent-death
        // signal still takes grace, or unshare and with it the namespace, down.
        let mut argv = vec!["setpriv", "--pdeathsig", "KILL"];
        if mode == Mode::Init {
            argv.extend(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]);
        }
        argv.push(common::GRACE);
        argv.extend(args);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .env_remove("GRACE_LOG")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Raw {
            child,
            lines,
            seen: vec![],
        }
    }

    /// grace's PID as the test sees it: unshare's only child, or the child itself.
    fn pid(&self, mode: Mode) -> i32 {
        let me = self.child.id() as i32;
        match mode {
            Mode::Child => me,
            Mode::Init => children(me)[0],
        }
    }

    /// Waits up to `limit` for a stdout line containing `needle` and takes it: a line is found
    /// once. Lines passed over are kept for later calls. `None` on time-out.
    fn line_within(&mut self, needle: &str, limit: Duration) -> Option<String> {
        if let Some(i) = self.seen.iter().position(|l| l.contains(needle)) {
            return Some(self.seen.remove(i));
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(line) => self.seen.push(line),
                Err(_) => return None,
            }
        }
    }

    fn expect_line(&mut self, needle: &str) -> String {
        self.line_within(needle, PATIENCE)
            .unwrap_or_else(|| panic!("no line with {needle:?}; stdout: {:?}", self.seen))
    }

    /// Waits for grace to exit; returns its exit code (`None`: killed by a signal).
    fn wait(mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                _ = self.child.kill();
                panic!("grace did not exit within {PATIENCE:?}");
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// The PIDs (as the test sees them) of the children of `pid`, all its threads included.
fn children(pid: i32) -> Vec<i32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut found = vec![];
        for task in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
        {
            let path = task.unwrap().path().join("children");
            let text = fs::read_to_string(path).unwrap_or_default();
            found.extend(text.split_whitespace().map(|p| p.parse::<i32>().unwrap()));
        }
        if !found.is_empty() {
            found.sort();
            return found;
        }
        assert!(Instant::now() < deadline, "pid {pid} has no child");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE (and raises
/// SIGPIPE in the writer).
fn closed_pipe() -> Stdio {
    let (reader, writer) = pipe();
    drop(reader);
    writer.into()
}

/// A close-on-exec pipe (std's `io::pipe` is newer than our MSRV): (reader, writer).
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

/// Storm rounds with fences, as in the storm test but short: `rounds` rounds of every kind in
/// `kinds`, each round acknowledged by the program. Used where the point is grace's logging.
fn acknowledged_rounds(raw: &mut Raw, pid: i32, kinds: &[i32], rounds: usize) {
    let fence = libc::SIGRTMAX();
    let mut fences = 0;
    for round in 1..=rounds {
        for &sig in kinds {
            send(pid, sig).unwrap();
        }
        let mut got = BTreeMap::<i32, u64>::new();
        while kinds.iter().any(|k| !got.contains_key(k)) {
            fences += 1;
            assert!(fences < 100 * rounds, "round {round}: only {got:?} arrived");
            send(pid, fence).unwrap();
            let line = raw.expect_line(&format!("fence {fences} "));
            got.extend(parse_fence(&line).1);
        }
    }
}

#[test]
fn logging_to_a_closed_stderr_pipe_neither_kills_nor_stops_grace() {
    need_namespaces!();
    let storm = compile("storm");
    let (fence, finish) = (libc::SIGRTMAX(), libc::SIGRTMAX() - 1);
    let kinds = [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGWINCH,
        libc::SIGRTMIN(),
    ];
    for mode in [Mode::Init, Mode::Child] {
        // -vv: every forward, reap and transition is a failed write, with SIGPIPE.
        let args = [
            "-vv",
            storm.as_str(),
            &fence.to_string(),
            &finish.to_string(),
            "42",
        ];
        let mut raw = Raw::start(mode, &args, closed_pipe());
        raw.expect_line("storm ready");
        let pid = raw.pid(mode);
        acknowledged_rounds(&mut raw, pid, &kinds, 200);
        send(pid, libc::SIGTERM).unwrap(); // a stop: more log lines, the cascade
        send(pid, finish).unwrap();
        assert_eq!(raw.wait(), Some(42), "grace was killed, or lost the status");
    }
}

#[test]
fn start_up_failures_keep_their_exit_codes_when_stderr_is_a_closed_pipe() {
    for (args, code) in [
        (&["--bogus", "true"][..], 2),
        (&["--grace", "soon", "true"][..], 2),
        (&["/no/such/program"][..], 127),
    ] {
        let status = Command::new(common::GRACE)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(closed_pipe())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{args:?}: {status:?}");
    }
}

#[test]
fn a_stalled_stderr_reader_does_not_stop_forwarding() {
    need_namespaces!();
    let storm = compile("storm");
    let (fence, finish) = (libc::SIGRTMAX(), libc::SIGRTMAX() - 1);
    // The reader lives but never reads: once the pipe's 64 KiB are full, a write blocks.
    let (stalled_reader, writer) = pipe();
    let args = [
        "-vv",
        storm.as_str(),
        &fence.to_string(),
        &finish.to_string(),
        "42",
    ];
    let mut raw = Raw::start(Mode::Init, &args, writer.into());
    raw.expect_line("storm ready");
    let pid = raw.pid(Mode::Init);
    // Each fence is forwarded and logged (two debug lines of about 90 bytes): 2000 of them
    // write far more than the pipe holds.
    for k in 1..=2000 {
        send(pid, fence).unwrap();
        let acked = raw.line_within(&format!("fence {k} "), Duration::from_secs(5));
        assert!(
            acked.is_some(),
            "fence {k} was not forwarded within 5 s: grace is blocked writing its log"
        );
    }
    send(pid, finish).unwrap();
    assert_eq!(raw.wait(), Some(42));
    drop(stalled_reader);
}

/// The program closes, or sends to /dev/null, its own stdout and stderr while grace logs every
/// signal: none of it is grace's business.
#[test]
fn a_program_closing_or_redirecting_its_output_changes_nothing_for_grace() {
    need_namespaces!();
    for redirect in [">&- 2>&-", ">/dev/null 2>&1"] {
        let script = format!(
            "trap '' HUP USR1 WINCH; trap 'exit 7' USR2; echo ready; exec {redirect}; \
             while :; do sleep 1 & wait $!; done"
        );
        let g = grace(Mode::Init, &["-vv", "sh", "-c", &script]).start();
        g.expect_line("ready");
        for _ in 0..50 {
            for sig in ["HUP", "USR1", "WINCH"] {
                g.signal(sig);
            }
        }
        g.signal("USR2");
        let out = g.wait(PATIENCE);
        assert_eq!(out.code, 7, "{redirect}: {}", out.stderr);
        assert!(out.stderr.contains("forwarded SIGUSR2"), "{}", out.stderr);
        assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    }
}

// ---- SIGSTOP and SIGCONT to grace, SIGKILL to the program ---------------------------------------

/// The state letter of /proc/PID/stat (R, S, T, Z...).
fn state(pid: i32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.trim_start().chars().next())
        .unwrap_or('?')
}

/// Waits until `pid` is in state `want`.
fn wait_for_state(pid: i32, want: char) {
    let deadline = Instant::now() + PATIENCE;
    while state(pid) != want {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want}: {}",
            state(pid)
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// SIGSTOP from outside stops even a namespace's init (it cannot be caught). What arrives while
/// grace is stopped waits; after SIGCONT, which grace forwards too, everything is delivered.
#[test]
fn signals_sent_while_grace_is_stopped_are_forwarded_after_sigcont() {
    need_namespaces!();
    let storm = compile("storm");
    let (fence, finish) = (libc::SIGRTMAX(), libc::SIGRTMAX() - 1);
    let g = grace(
        Mode::Init,
        &[&storm, &fence.to_string(), &finish.to_string(), "42"],
    )
    .start();
    g.expect_line("storm ready");
    let pid = g.pid();
    send(pid, libc::SIGSTOP).unwrap();
    wait_for_state(pid, 'T');
    let pending = [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGTERM,
        libc::SIGRTMIN() + 3,
    ];
    for sig in pending {
        send(pid, sig).unwrap();
    }
    send(pid, libc::SIGCONT).unwrap();
    let mut got = BTreeMap::<i32, u64>::new();
    let mut fences = 0;
    let want: Vec<i32> = pending.iter().copied().chain([libc::SIGCONT]).collect();
    while want.iter().any(|k| !got.contains_key(k)) {
        fences += 1;
        assert!(fences < 50, "only {got:?} arrived");
        send(pid, fence).unwrap();
        got.extend(parse_fence(&g.expect_line(&format!("fence {fences} "))).1);
    }
    send(pid, finish).unwrap();
    assert_eq!(g.wait(PATIENCE).code, 42);
}

/// A program that exits while grace is stopped stays a zombie until SIGCONT; then grace reaps
/// it and exits with its status.
#[test]
fn a_program_exiting_while_grace_is_stopped_is_reaped_after_sigcont() {
    need_namespaces!();
    let script = "trap 'exit 9' USR1; echo ready; while :; do sleep 1 & wait $!; done";
    let g = grace(Mode::Init, &["sh", "-c", script]).start();
    g.expect_line("ready");
    let pid = g.pid();
    let program = children(pid)[0];
    send(pid, libc::SIGSTOP).unwrap();
    wait_for_state(pid, 'T');
    send(program, libc::SIGUSR1).unwrap(); // straight to the program: grace cannot forward now
    wait_for_state(program, 'Z');
    let cont = Instant::now();
    send(pid, libc::SIGCONT).unwrap();
    let out = g.wait(PATIENCE);
    assert_eq!(out.code, 9, "{}", out.stderr);
    assert!(
        cont.elapsed() < Duration::from_secs(5),
        "{:?}",
        cont.elapsed()
    );
}

/// The grace period runs on the monotonic clock, which goes on while grace is stopped: a
/// deadline that passed meanwhile fires as soon as grace runs again.
#[test]
fn a_grace_period_that_ends_while_grace_is_stopped_fires_at_sigcont() {
    need_namespaces!();
    let g = grace(
        Mode::Init,
        &[
            "-t",
            "1",
            "python3",
            &common::fixture("signals.py"),
            "NEVER",
        ],
    )
    .start();
    g.expect_line("ready");
    let pid = g.pid();
    let term = Instant::now();
    g.signal("TERM");
    g.expect_line("got SIGTERM");
    send(pid, libc::SIGSTOP).unwrap();
    wait_for_state(pid, 'T');
    while term.elapsed() < Duration::from_millis(1500) {
        thread::sleep(Duration::from_millis(20)); // the grace period passes while stopped
    }
    let cont = Instant::now();
    send(pid, libc::SIGCONT).unwrap();
    let out = g.wait(PATIENCE);
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert!(out.stderr.contains("grace period over"), "{}", out.stderr);
    assert!(
        cont.elapsed() < Duration::from_secs(3),
        "SIGKILL came {:?} after SIGCONT",
        cont.elapsed()
    );
}

/// The program is shutting down (it got TERM and goes on) when someone SIGKILLs it: grace
/// reports 137, as documented, and the stop ends there.
#[test]
fn a_program_sigkilled_mid_shutdown_exits_137() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let g = grace(
            mode,
            &["-v", "python3", &common::fixture("signals.py"), "NEVER"],
        )
        .start();
        g.expect_line("ready");
        g.signal("TERM");
        g.expect_line("got SIGTERM");
        send(children(g.pid())[0], libc::SIGKILL).unwrap();
        let out = g.wait(PATIENCE);
        assert_eq!(out.code, 137, "{}", out.stderr);
        assert!(
            out.stderr.contains("program exited with 137"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("sent SIGKILL"), "{}", out.stderr);
    }
}

// ---- the program's exit racing a stop signal -----------------------------------------------

/// The program exits 0 by itself about 2 ms after the test's go, or 3 from its SIGTERM handler;
/// the test sends SIGTERM around that moment, moving its aim so that about half of the runs go
/// each way. The status must always be one of the two: never 137, 143 or anything else.
#[test]
fn a_stop_signal_racing_the_programs_exit_never_changes_its_status() {
    need_namespaces!();
    let racer = compile("racer");
    let runs = if soak() { 15_000 } else { 1000 };
    let started = Instant::now();
    let mut outcomes = BTreeMap::<i32, usize>::new();
    let mut aim_us: u64 = 1500;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for run in 0..runs {
        let mode = if run % 2 == 0 {
            Mode::Init
        } else {
            Mode::Child
        };
        let helper = if run % 4 < 2 { "0" } else { "1" };
        let mut raw = Raw::start_with(
            mode,
            &[&racer, "2000", helper],
            Stdio::piped(),
            Stdio::inherit(),
        );
        let pid = raw.pid(mode);
        raw.expect_line("ready");
        raw.child.stdin.take().unwrap().write_all(b"g").unwrap();
        let at = Instant::now() + Duration::from_micros(aim_us + rng.below(200));
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        _ = send(pid, libc::SIGTERM); // ESRCH: grace already gone, fine
        let code = raw.wait().expect("grace was killed by a signal");
        assert!(
            code == 0 || code == 3,
            "run {run} ({}): exit {code} is not the program's own",
            if mode == Mode::Init {
                "PID 1"
            } else {
                "subreaper"
            }
        );
        *outcomes.entry(code).or_default() += 1;
        // Aim later if TERM came first, earlier if the program had already exited.
        aim_us = match code {
            3 => aim_us + 50,
            _ => aim_us.saturating_sub(50),
        };
    }
    // Without both outcomes, the race was never run.
    assert!(
        outcomes.len() == 2,
        "the race was never close: {outcomes:?}"
    );
    eprintln!(
        "figures: exit/TERM race: {runs} runs in {:.1}s, outcomes {outcomes:?} (0: exited \
         first, 3: TERM first), final aim {aim_us} µs after the go",
        started.elapsed().as_secs_f64()
    );
}

// ---- PID reuse -----------------------------------------------------------------------------

/// How grace names a signal in its log (`SIGHUP`, `SIGRTMIN+3`).
fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if sig == libc::SIGRTMIN() => "SIGRTMIN".into(),
        Err(_) => format!("SIGRTMIN+{}", sig - libc::SIGRTMIN()),
    }
}

/// Every signal grace forwards, but SIGRTMAX (the impostor's own end signal).
fn forwardable_but_rtmax() -> Vec<i32> {
    let never = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGCHLD,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGSEGV,
        libc::SIGILL,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGABRT,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    (1..libc::SIGRTMAX())
        .filter(|s| !never.contains(s) && !(32..libc::SIGRTMIN()).contains(s))
        .collect()
}

/// After the program is reaped, the kernel hands its PID to another process (the fixture forces
/// it through ns_last_pid, which it can do as root in its own namespace). Signals for grace go
/// on arriving; none may reach the impostor, by PID or by process group. The control: a signal
/// the keeper sends to PID M itself does land on the impostor.
#[test]
fn no_signal_reaches_a_process_that_inherited_the_programs_pid() {
    need_namespaces!();
    let reuse = compile("reuse");
    let kinds = forwardable_but_rtmax();
    for group in [false, true] {
        let mut args = vec!["-vv", "--drain", "60"];
        args.extend(group.then_some("-g"));
        args.extend([reuse.as_str(), "7"]);
        // grace's log on stdout too, so the test can see when grace has handled a signal.
        let g = grace(Mode::Init, &args)
            .through(&["sh", "-c", "exec 2>&1; exec \"$@\"", "sh"])
            .start();
        let main: i32 = g.expect_line("main pid ")[9..].parse().unwrap();
        let impostor = g.expect_line("impostor pid ");
        assert_eq!(impostor, format!("impostor pid {main} group {main}"));
        let control = g.expect_line(&format!("impostor got {} from ", libc::SIGRTMIN() + 5));
        assert!(!control.ends_with(" from 1"), "{control}");
        // Rounds of one signal of each kind; a round ends when grace has logged every kind of
        // it, so each signal is handled before the next of its kind is sent (none coalesce).
        // SIGTSTP goes alone: generating it would discard a SIGCONT still pending at grace.
        let rounds = 20;
        let batches = [
            kinds
                .iter()
                .copied()
                .filter(|&s| s != libc::SIGTSTP)
                .collect(),
            vec![libc::SIGTSTP],
        ];
        for round in 1..=rounds {
            for batch in &batches {
                for &sig in batch {
                    send(g.pid(), sig).unwrap();
                }
                for &sig in batch {
                    wait_for_log(&g, &format!("Signal({})", signal_name(sig)), round);
                }
            }
        }
        let outer = descendants(g.pid())
            .into_iter()
            .find(|&p| ns_pid(p) == Some(main))
            .expect("the impostor, seen from outside");
        send(outer, libc::SIGRTMAX()).unwrap();
        let out = g.wait(PATIENCE);
        let got: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("impostor got"))
            .collect();
        assert_eq!(
            got,
            [
                control.as_str(),
                &format!("impostor got {} from 0", libc::SIGRTMAX())
            ],
            "group {group}: the impostor got signals meant for the program:\n{}",
            out.stdout
        );
        assert_eq!(out.code, 7, "{}", out.stdout);
        eprintln!(
            "figures: PID reuse (group {group}): {} signals sent to grace after pid {main} was \
             reused, 0 reached the impostor; the control did",
            rounds * kinds.len()
        );
    }
}

/// Waits until stdout holds `n` occurrences of `needle`.
fn wait_for_log(g: &common::Grace, needle: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while g.stdout().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "grace never logged {needle} {n} times"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Every process below `pid`, as the test sees them.
fn descendants(pid: i32) -> Vec<i32> {
    let mut found = vec![];
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for task in fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
        {
            let text =
                fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
            for child in text.split_whitespace().map(|c| c.parse::<i32>().unwrap()) {
                found.push(child);
                todo.push(child);
            }
        }
    }
    found
}

/// The PID of `pid` in its own (innermost) namespace, from the NSpid line of its status.
fn ns_pid(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

// ---- descriptors ---------------------------------------------------------------------------

/// Lists the shell's own descriptors as `fd N KIND`, with pipe and socket inodes left out (they
/// differ between runs). The glob's directory descriptor is listed too, in every run alike.
const LIST_FDS: &str = "for f in /proc/$$/fd/*; do \
    t=$(readlink $f); echo \"fd ${f##*/} ${t%%:\\[*}\"; done";

fn fd_lines(stdout: &str, prefix: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(String::from)
        .collect()
}

/// The same listing without grace, with the same stdio as the harness gives grace.
fn control_fds(mode: Mode, before: &str) -> Vec<String> {
    let script = format!("{before}{LIST_FDS}");
    let mut argv: Vec<&str> = match mode {
        Mode::Init => vec!["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
        Mode::Child => vec![],
    };
    argv.extend(["sh", "-c", &script]);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fd_lines(&String::from_utf8_lossy(&out.stdout), "")
}

/// The program, and a pre-stop hook started long after grace set itself up, see exactly the
/// descriptors they would see without grace: none that grace opened leaks into them.
#[test]
fn the_program_and_the_hook_see_no_descriptor_of_graces() {
    need_namespaces!();
    for mode in [Mode::Init, Mode::Child] {
        let control = control_fds(mode, "");
        // The negative control: one extra descriptor does show in the listing.
        let leaky = control_fds(mode, "exec 9</dev/null; ");
        assert_ne!(leaky, control, "the listing cannot see an extra descriptor");
        let hook = format!("sh -c '{}'", LIST_FDS.replace("fd ", "hook fd "));
        let program = format!(
            "{LIST_FDS}; trap '' HUP WINCH; trap 'exit 0' TERM; echo ready; \
             while :; do sleep 1 & wait $!; done"
        );
        let g = grace(mode, &["-vv", "--pre-stop", &hook, "sh", "-c", &program]).start();
        g.expect_line("ready");
        for _ in 0..20 {
            g.signal("HUP");
            g.signal("WINCH");
        }
        g.signal("TERM");
        let out = g.wait(PATIENCE);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            fd_lines(&out.stdout, "fd "),
            control[..]
                .iter()
                .map(|l| l["fd ".len()..].to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            fd_lines(&out.stdout, "hook fd "),
            fd_lines(&out.stdout, "fd ")
        );
    }
}

// ---- bad input -------------------------------------------------------------------------------

/// Runs grace with raw (possibly non-UTF-8) arguments and one GRACE_* variable; returns the exit
/// code, stdout and stderr.
fn run_raw(args: &[&[u8]], env: Option<(&str, &[u8])>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(common::GRACE);
    cmd.args(args.iter().map(|a| OsStr::from_bytes(a)))
        .env_remove("GRACE_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    if let Some((key, value)) = env {
        cmd.env(key, OsStr::from_bytes(value));
    }
    let out = cmd.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn assert_one_usage_line(args: &[&[u8]], env: Option<(&str, &[u8])>) {
    let (code, stdout, stderr) = run_raw(args, env);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let args_shown: Vec<String> = args.iter().map(|a| lossy(a)).collect();
    let env_shown = env.map(|(k, v)| format!("{k}={}", lossy(v)));
    let shown = format!("{args_shown:?} {env_shown:?}: exit {code:?}, stderr {stderr:?}");
    assert_eq!(code, Some(2), "{shown}");
    assert_eq!(stderr.lines().count(), 1, "{shown}");
    assert!(stderr.starts_with("grace: "), "{shown}");
    assert_eq!(stdout, "", "{shown}");
}

/// The parsers' property tests live in src/cli/proptests.rs; this runs a few nasty inputs
/// through the real binary: exit 2 and exactly one `grace:` line, nothing started.
#[test]
fn nasty_arguments_give_exit_2_and_one_grace_line() {
    let long = [b"9".repeat(100_000), b"x".to_vec()].concat();
    let cases: &[&[&[u8]]] = &[
        &[b"-t", b"\xff\xfe", b"app"],
        &[b"--\xff", b"app"],
        &[b"-\x01", b"app"],
        &[b"--drain", b"1e999", b"app"],
        &[b"--grace", b"99999999999999999999999h", b"app"],
        &[b"--grace", &long, b"app"],
        &[b"--grace=", b"app"],
        &[b"--success-exit", b"-1", b"app"],
        &[b"--rewrite", b":", b"app"],
        &[b"--rewrite", b"RTMAX-99:TERM", b"app"],
        &[b"--rewrite", b"TERM:RTMIN+999999999", b"app"],
        &[b"--pre-stop", b"\"unterminated", b"app"],
        &[b"--pdeathsig", b"SIG", b"app"],
        &[b"-vvvvvvvvvx", b"app"],
        &[b"-t"],
        &[],
    ];
    for args in cases {
        assert_one_usage_line(args, None);
    }
    for (key, value) in [
        ("GRACE_REWRITE", &b",,,:"[..]),
        ("GRACE_SUCCESS_EXIT", b"0,\xff"),
        ("GRACE_GROUP", b"\xc3\x28"),
        ("GRACE_PRE_STOP", b"'"),
    ] {
        assert_one_usage_line(&[b"app"], Some((key, value)));
    }
}

/// Found as bugs: RTMIN+2147483647 overflowed in the signal parser (a panic in debug builds),
/// and a quoted newline split the fatal message in two.
#[test]
fn control_characters_and_huge_rt_offsets_still_give_one_line() {
    for args in [
        &[&b"--pdeathsig"[..], b"RTMIN+2147483647", b"app"][..],
        &[b"--rewrite", b"RTMIN+2147483614:TERM", b"app"],
        &[b"--grace", b"1\nx", b"app"],
        &[b"--bogus\nflag", b"app"],
    ] {
        assert_one_usage_line(args, None);
    }
}
