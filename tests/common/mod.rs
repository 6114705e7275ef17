//! Runs the real grace binary, as PID 1 of a fresh PID namespace (`unshare`) or as a plain
//! child, and talks to it the way a container runtime would: signals from outside, lines on
//! stdout, an exit status. Every wait has a deadline; nothing sleeps to "let things settle".
#![allow(dead_code)] // each test file uses a different part of this

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const GRACE: &str = env!("CARGO_BIN_EXE_grace");

/// The generous default deadline for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Whether this machine lets us create PID namespaces. When it does not, the caller prints
/// `skipped:` and returns, except under CI, where a skip would hide a broken machine.
pub fn namespaces_work() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but PID namespaces are unavailable"
        );
        eprintln!("skipped: cannot create a PID namespace here (unshare --pid failed)");
    }
    ok
}

/// Skips the calling test when PID namespaces are unavailable (see [`namespaces_work`]).
#[macro_export]
macro_rules! need_namespaces {
    () => {
        if !common::namespaces_work() {
            return;
        }
    };
}

/// How grace is started.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As PID 1 of a new PID namespace with its own /proc.
    Init,
    /// As an ordinary child of the test (grace becomes a subreaper).
    Child,
}

pub struct Run {
    binary: String,
    mode: Mode,
    args: Vec<String>,
    env: Vec<(String, String)>,
    prefix: Vec<String>,
}

/// Starts building a run of grace with `args`.
pub fn grace(mode: Mode, args: &[&str]) -> Run {
    Run {
        binary: GRACE.into(),
        mode,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        prefix: vec![],
    }
}

/// Starts building a run of another init (tini, dumb-init, or grace under another name), for
/// side-by-side comparisons.
pub fn init(binary: &str, mode: Mode, args: &[&str]) -> Run {
    Run {
        binary: binary.into(),
        ..grace(mode, args)
    }
}

/// The grace binary under another name (a symlink in a temp dir), as `tini`, `docker-init` or
/// `dumb-init`: the name picks the personality.
pub fn grace_as(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("grace-as-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(GRACE, &link).unwrap();
    }
    link.display().to_string()
}

impl Run {
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs grace through `wrapper` (argv that execs the rest), e.g. to hand it odd signal state.
    pub fn through(mut self, wrapper: &[&str]) -> Run {
        self.prefix = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn start(self) -> Grace {
        let mut argv: Vec<String> = match self.mode {
            // setpriv: if the test dies (a nextest time-out), unshare gets SIGKILL, and
            // --kill-child takes grace and its whole namespace with it.
            Mode::Init => [
                "setpriv",
                "--pdeathsig",
                "KILL",
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
            ]
            .map(String::from)
            .to_vec(),
            Mode::Child => vec![],
        };
        argv.extend(self.prefix);
        argv.push(self.binary);
        argv.extend(self.args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env_remove("GRACE_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn grace");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out_tx = tx.clone();
        let stdout_all = Arc::new(Mutex::new(String::new()));
        let sink = stdout_all.clone();
        let stdout_thread = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                _ = out_tx.send(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_thread = thread::spawn(move || {
            let mut s = String::new();
            _ = stderr.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let pid = match self.mode {
            Mode::Init => inner_pid(child.id() as i32),
            Mode::Child => Some(child.id() as i32),
        };
        Grace {
            pid,
            child,
            lines,
            stdout_all,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
            started,
        }
    }

    /// Starts grace and waits for it to exit.
    pub fn output(self) -> Outcome {
        self.start().wait(PATIENCE)
    }
}

pub struct Grace {
    pid: Option<i32>,
    child: Child,
    lines: Receiver<String>,
    stdout_all: Arc<Mutex<String>>,
    stdout_thread: Option<thread::JoinHandle<()>>,
    stderr_thread: Option<thread::JoinHandle<String>>,
    pub started: Instant,
}

/// How a run of grace ended.
#[derive(Debug)]
pub struct Outcome {
    /// grace's exit code (unshare passes it through).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// From start until exit.
    pub elapsed: Duration,
}

impl Grace {
    /// grace's PID as seen from the test (outside its namespace). Panics if grace already
    /// exited before we could see it.
    pub fn pid(&self) -> i32 {
        self.pid.expect("grace exited before its pid was seen")
    }

    /// Sends `sig` (a name kill(1) knows: TERM, USR1, RTMIN+2, or a number) to grace.
    pub fn signal(&self, sig: &str) {
        assert!(self.try_signal(sig), "kill -s {sig} failed");
    }

    /// Like [`Grace::signal`], but returns whether kill(1) succeeded.
    pub fn try_signal(&self, sig: &str) -> bool {
        let Some(pid) = self.pid else { return false };
        Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("run kill")
            .success()
    }

    /// Waits until some stdout line (since the start) contains `needle`; returns it. Panics
    /// after `PATIENCE`.
    pub fn expect_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.stdout().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => continue, // a new line: look again
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} within {PATIENCE:?}; stdout so far:\n{}",
                        self.stdout()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "stdout closed before a line with {needle:?}; stdout:\n{}",
                        self.stdout()
                    )
                }
            }
        }
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout_all.lock().unwrap().clone()
    }

    /// Waits up to `limit` for grace to exit. Panics (after killing it) when it does not.
    pub fn wait(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                _ = self.child.kill();
                _ = self.child.wait();
                panic!(
                    "grace did not exit within {limit:?}; stdout:\n{}",
                    self.stdout()
                );
            }
            thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.started.elapsed();
        self.stdout_thread.take().unwrap().join().unwrap();
        let stderr = self.stderr_thread.take().unwrap().join().unwrap();
        let code = status
            .code()
            .unwrap_or_else(|| panic!("grace was killed: {status:?}"));
        Outcome {
            code,
            stdout: self.stdout(),
            stderr,
            elapsed,
        }
    }
}

impl Drop for Grace {
    fn drop(&mut self) {
        // unshare --kill-child takes grace (and with it the namespace) down too.
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// grace's PID outside the namespace: the only child of `unshare --fork`. `None` when unshare
/// ends before we see it (grace exited at once).
fn inner_pid(unshare: i32) -> Option<i32> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"));
        if let Some(pid) = children.unwrap_or_default().split_whitespace().next() {
            return Some(pid.parse().unwrap());
        }
        let stat = std::fs::read_to_string(format!("/proc/{unshare}/stat")).unwrap_or_default();
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("unshare never forked grace");
}

/// `/proc/PID/status` field `key` as a number (e.g. "VmRSS" in kB, "voluntary_ctxt_switches").
pub fn status_field(pid: i32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Context switches of every thread of `pid`, summed.
pub fn context_switches(pid: i32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        for line in text.lines() {
            if line.contains("ctxt_switches:") {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    total
}

pub fn python() -> PathBuf {
    PathBuf::from("python3")
}

/// The `got SIG…` lines a signal-reporting fixture printed, in order.
pub fn got_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("got ")).collect()
}
