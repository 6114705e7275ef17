//! The supervisor: a pure state machine ([`step`]) and the one loop that performs its effects
//! ([`run`]).
//!
//! The stop cascade, as a timeline:
//! 1. a stop signal (TERM, INT, QUIT) arrives; the pre-stop hook runs if there is one;
//! 2. the signal goes to the program alone, which stops its own workers in its own order;
//! 3. the program exits; every process still left gets SIGTERM and the drain time;
//! 4. at the first deadline that passes (grace period or drain), everything left gets SIGKILL;
//! 5. grace reaps the last of them and exits with the program's status.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use nix::libc;
use nix::unistd::{getppid, Pid};

use crate::cli::Config;
use crate::error::Error;
use crate::procs;
use crate::reap::{self, Reaped};
use crate::signals::{self, Sig};
use crate::spawn;
use crate::sys;
use crate::terminal::Terminal;

/// The fixed rules `step` applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// How long after the first stop signal until everything is killed; `None`: no limit.
    pub grace: Option<Duration>,
    /// How long others get after SIGTERM once the program has exited.
    pub drain: Duration,
    /// Whether a pre-stop hook is configured.
    pub hook: bool,
    pub hook_timeout: Duration,
    /// `(from, to)`; `to == None` drops the signal. Later entries win.
    pub rewrites: Vec<(Sig, Option<Sig>)>,
    /// After forwarding a received SIGTSTP, stop grace too (dumb-init's job control).
    pub suspend_on_tstp: bool,
}

impl Policy {
    fn rewrite(&self, sig: Sig) -> Option<Sig> {
        match self.rewrites.iter().rev().find(|(from, _)| *from == sig) {
            Some((_, to)) => *to,
            None => Some(sig),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The program runs; nobody asked it to stop. Ends with a stop signal or the program's exit.
    Running,
    /// The pre-stop hook runs; the stop signal `signal` waits for it. Ends when the hook exits,
    /// at `hook_deadline`, or when the program exits.
    Hooking {
        signal: Sig,
        hook_deadline: Instant,
        kill_at: Option<Instant>,
    },
    /// The program has its stop signal. Ends when it exits, or at `kill_at`.
    Stopping { kill_at: Option<Instant> },
    /// The program exited with `code`; the others got SIGTERM. Ends when none is left, or at
    /// `kill_at`.
    Draining { code: u8, kill_at: Instant },
    /// Everything left got SIGKILL. Ends when the program's code is known and nothing is left.
    /// Until then the SIGKILL is
    /// repeated every `KILL_RETRY` (at `retry_at`): not as PID 1, grace signals its
    /// descendants one by one, and one forked between the /proc walk and the kills would
    /// otherwise keep grace waiting forever.
    Killing { code: Option<u8>, retry_at: Instant },
    /// grace exits with `code`.
    Done { code: u8 },
}

impl State {
    /// The one deadline the loop waits for, if any. While running, there is none: grace sleeps
    /// until a signal arrives, with no periodic wake-up.
    pub fn deadline(&self) -> Option<Instant> {
        match *self {
            State::Hooking { hook_deadline, .. } => Some(hook_deadline),
            State::Stopping { kill_at } => kill_at,
            State::Draining { kill_at, .. } => Some(kill_at),
            State::Killing { retry_at, .. } => Some(retry_at),
            State::Running | State::Done { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// grace received this signal (before rewriting).
    Signal(Sig),
    /// The program exited with `code`; `alone` if grace has no other child left.
    MainExited {
        code: u8,
        alone: bool,
    },
    HookExited,
    /// The program exited earlier and now the last other process is gone too.
    AllGone,
    /// The state's deadline has passed.
    Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send this signal to the program (or its group).
    Forward(Sig),
    RunHook,
    KillHook,
    /// SIGTERM every process but grace (the program is gone).
    TermOthers,
    /// SIGKILL every process but grace, the program included.
    KillAll,
    /// Stop grace itself (SIGSTOP), so a job-control shell above takes the terminal back.
    SuspendSelf,
}

/// How often the final SIGKILL is repeated while something is still left.
pub const KILL_RETRY: Duration = Duration::from_secs(1);

/// One transition. Pure: time comes in as `now`, effects go out as actions.
pub fn step(state: State, event: Event, now: Instant, policy: &Policy) -> (State, Vec<Action>) {
    use {Action::*, Event::*, State::*};
    let after = |d: Duration| now.checked_add(d);
    let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match (state, event) {
        (Done { .. }, _) => (state, vec![]),

        (_, Signal(got)) => match policy.rewrite(got) {
            None => (state, vec![]),
            Some(send) => {
                let (next, mut actions) = on_signal(state, got, send, now, policy);
                if policy.suspend_on_tstp && got.0 == libc::SIGTSTP {
                    actions.push(SuspendSelf);
                }
                (next, actions)
            }
        },

        (Running | Hooking { .. } | Stopping { .. }, MainExited { code, alone: true }) => {
            (Done { code }, vec![])
        }
        (Running | Hooking { .. } | Stopping { .. }, MainExited { code, alone: false }) => {
            let kill_at = match state {
                Hooking { kill_at, .. } | Stopping { kill_at } => kill_at,
                _ => None,
            };
            match earliest(after(policy.drain), kill_at) {
                Some(at) if at > now => (Draining { code, kill_at: at }, vec![TermOthers]),
                _ => (
                    Killing {
                        code: Some(code),
                        retry_at: now + KILL_RETRY,
                    },
                    vec![KillAll],
                ),
            }
        }
        (
            Killing {
                code: None,
                retry_at,
            },
            MainExited { code, alone },
        ) => match alone {
            true => (Done { code }, vec![]),
            false => (
                Killing {
                    code: Some(code),
                    retry_at,
                },
                vec![],
            ),
        },
        // The program exits once; a second report cannot happen.
        (Draining { .. } | Killing { code: Some(_), .. }, MainExited { .. }) => (state, vec![]),

        (
            Hooking {
                signal, kill_at, ..
            },
            HookExited,
        ) => (Stopping { kill_at }, vec![Forward(signal)]),
        (
            Hooking {
                signal, kill_at, ..
            },
            Deadline,
        ) => (Stopping { kill_at }, vec![KillHook, Forward(signal)]),
        // A hook cut off earlier, reaped now.
        (Running | Stopping { .. } | Draining { .. } | Killing { .. }, HookExited) => {
            (state, vec![])
        }

        (Stopping { kill_at: Some(_) }, Deadline) => (
            Killing {
                code: None,
                retry_at: now + KILL_RETRY,
            },
            vec![KillAll],
        ),
        (Draining { code, .. }, Deadline) => (
            Killing {
                code: Some(code),
                retry_at: now + KILL_RETRY,
            },
            vec![KillAll],
        ),
        (Killing { code, .. }, Deadline) => (
            Killing {
                code,
                retry_at: now + KILL_RETRY,
            },
            vec![KillAll],
        ),
        // No deadline armed: a spurious wake-up.
        (Running | Stopping { kill_at: None }, Deadline) => (state, vec![]),

        (
            Draining { code, .. }
            | Killing {
                code: Some(code), ..
            },
            AllGone,
        ) => (Done { code }, vec![]),
        // The program is a child of ours: while it lives, grace is never alone.
        (Running | Hooking { .. } | Stopping { .. } | Killing { code: None, .. }, AllGone) => {
            (state, vec![])
        }
    }
}

/// A received signal `got`, to be forwarded as `send`. Whether it starts a stop is judged on
/// what was received (what the operator meant), not on what a rewrite turns it into.
fn on_signal(
    state: State,
    got: Sig,
    send: Sig,
    now: Instant,
    policy: &Policy,
) -> (State, Vec<Action>) {
    use {Action::*, State::*};
    let kill_at = policy.grace.and_then(|g| now.checked_add(g));
    match state {
        Running if got.is_stop() && policy.hook => {
            let hook_end = now.checked_add(policy.hook_timeout).unwrap_or(now);
            let hook_deadline = kill_at.map_or(hook_end, |k| k.min(hook_end));
            (
                Hooking {
                    signal: send,
                    hook_deadline,
                    kill_at,
                },
                vec![RunHook],
            )
        }
        Running if got.is_stop() => (Stopping { kill_at }, vec![Forward(send)]),
        // A second stop signal during the hook: the first one is already waiting for it.
        Hooking { .. } if got.is_stop() => (state, vec![]),
        // Forwarded, but no clock restarts.
        Running | Hooking { .. } | Stopping { .. } => (state, vec![Forward(send)]),
        // The program is gone: nobody to forward to.
        Draining { .. } | Killing { .. } | Done { .. } => (state, vec![]),
    }
}

/// Sets grace up, starts the program, and supervises it to the end. Returns grace's exit code.
pub fn run(config: &Config) -> Result<u8, Error> {
    let signals = signals::Source::listen().map_err(|source| Error::Setup {
        what: "set up signal handling",
        source,
    })?;
    become_reaper()?;
    if let Some(sig) = config.pdeathsig {
        watch_parent(sig)?;
    }
    let terminal = Terminal::claim();
    let main = spawn::spawn(&config.program, &config.args, terminal.is_some())?;
    let foreground = if terminal.is_some() {
        " in the terminal's foreground"
    } else {
        ""
    };
    log::info!(
        "started '{}' as pid {main}{foreground}",
        config.program.to_string_lossy()
    );
    // From here on grace must not fail: a PID 1 that dies takes the container with it
    // (catatonit's rule). Trouble is logged and supervision goes on.
    let mut supervisor = Supervisor::new(config, main, terminal);
    let code = supervisor.supervise(&signals);
    if let Some(terminal) = &supervisor.terminal {
        terminal.restore();
    }
    let mapped = reported(code, &config.success_exits);
    supervisor.timeline.log_summary(code, mapped);
    Ok(mapped)
}

/// The exit code grace reports: `code`, or 0 when it is one the user declared a success (a JVM's
/// 143 after SIGTERM, say).
pub fn reported(code: u8, success_exits: &[u8]) -> u8 {
    if success_exits.contains(&code) {
        0
    } else {
        code
    }
}

/// Orphans go to the namespace's init or to the nearest PR_SET_CHILD_SUBREAPER ancestor. As
/// PID 1 we are the former; otherwise we make ourselves the latter, so orphans of the program
/// still come to us to be reaped and counted in the cascade.
fn become_reaper() -> Result<(), Error> {
    if procs::is_init() {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::Setup {
        what: "become a child subreaper",
        source: e.into(),
    })?;
    log::info!("not PID 1: became a child subreaper");
    Ok(())
}

/// PR_SET_PDEATHSIG: the kernel sends `sig` to grace when its parent dies. If the parent died
/// before the prctl, the kernel never will, so that case raises it now (the getppid check is
/// the documented idiom, prctl(2)). As PID 1 the parent is the runtime, which may exit right
/// after start-up (runc does), so the option is ignored there.
fn watch_parent(sig: Sig) -> Result<(), Error> {
    if procs::is_init() {
        log::info!("PID 1: --pdeathsig ignored");
        return Ok(());
    }
    let parent = getppid();
    let setup = |source| Error::Setup {
        what: "set the parent-death signal",
        source,
    };
    let nix_sig = nix::sys::signal::Signal::try_from(sig.0).map_err(|e| setup(e.into()))?;
    nix::sys::prctl::set_pdeathsig(nix_sig).map_err(|e| setup(e.into()))?;
    if getppid() != parent {
        sys::send(nix::unistd::getpid().as_raw(), sig).map_err(setup)?;
    }
    Ok(())
}

/// The loop's mutable world: the state, the live processes we track, what happened when.
struct Supervisor {
    policy: Policy,
    state: State,
    /// The program, until it is reaped. After that it is `None`, so no signal can reach a
    /// reused PID: reaping and sending happen on this one thread.
    main: Option<Pid>,
    hook: Option<Pid>,
    hook_argv: Option<Vec<OsString>>,
    group: bool,
    warn_on_reap: bool,
    /// Set when the program runs in the terminal's foreground.
    terminal: Option<Terminal>,
    timeline: Timeline,
}

impl Supervisor {
    fn new(config: &Config, main: Pid, terminal: Option<Terminal>) -> Supervisor {
        let policy = Policy {
            grace: config.grace,
            drain: config.drain,
            hook: config.pre_stop.is_some(),
            hook_timeout: config.pre_stop_timeout,
            rewrites: config.rewrites.clone(),
            suspend_on_tstp: config.suspend_on_tstp,
        };
        Supervisor {
            policy,
            state: State::Running,
            main: Some(main),
            hook: None,
            hook_argv: config.pre_stop.clone(),
            group: config.group,
            warn_on_reap: config.warn_on_reap,
            terminal,
            timeline: Timeline::default(),
        }
    }

    /// The only place grace waits: on one signalfd, with at most one deadline.
    fn supervise(&mut self, signals: &signals::Source) -> u8 {
        let mut events = VecDeque::new();
        loop {
            match self.next_signal(signals) {
                Some(Sig::CHLD) => self.reap(&mut events),
                Some(sig) => events.push_back(Event::Signal(sig)),
                None => events.push_back(Event::Deadline),
            }
            while let Some(event) = events.pop_front() {
                let now = Instant::now();
                let (next, actions) = step(self.state, event, now, &self.policy);
                log::debug!("{:?} --{event:?}--> {next:?}", self.state);
                self.timeline.record(self.state, event, next, now);
                self.state = next;
                for action in actions {
                    self.perform(action, &mut events);
                }
                if let State::Done { code } = self.state {
                    return code;
                }
            }
        }
    }

    /// Blocks for the next signal; `None` when the state's deadline passes first (checked
    /// before each wait, so a storm of signals cannot postpone a deadline forever).
    fn next_signal(&self, signals: &signals::Source) -> Option<Sig> {
        loop {
            match signals.next(self.state.deadline()) {
                Ok(next) => return next,
                Err(e) => {
                    // Not seen in practice (poll and read on a signalfd fail only for bad
                    // arguments or no memory); pausing keeps a persistent failure from
                    // spinning PID 1 at full CPU while it lasts.
                    log::error!("waiting for signals failed: {e}; retrying in 100ms");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn reap(&mut self, events: &mut VecDeque<Event>) {
        let reaped = match reap::reap_all(self.main, self.hook, self.warn_on_reap) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("waitpid failed: {e}; will retry on the next SIGCHLD");
                return;
            }
        };
        let Reaped {
            main,
            hook,
            main_stopped,
            children_left,
            ..
        } = reaped;
        if let (Some(sig), None) = (main_stopped, main) {
            self.on_program_stopped(Sig(sig));
        }
        self.timeline.reaped += reaped.count;
        if let Some(code) = hook {
            log::info!("pre-stop hook exited with {code}");
            self.timeline.hook_code = Some(code);
            self.hook = None;
            events.push_back(Event::HookExited);
        }
        if let Some(code) = main {
            log::info!("program exited with {code}");
            self.main = None;
            events.push_back(Event::MainExited {
                code,
                alone: !children_left,
            });
        } else if self.main.is_none() && !children_left {
            events.push_back(Event::AllGone);
        }
    }

    fn perform(&mut self, action: Action, events: &mut VecDeque<Event>) {
        match action {
            Action::Forward(sig) => self.forward(sig),
            Action::SuspendSelf if procs::is_init() => {
                log::debug!("not suspending: PID 1 cannot be stopped from inside its namespace")
            }
            Action::SuspendSelf => {
                log::debug!("suspending grace after SIGTSTP; SIGCONT resumes it");
                _ = sys::send(nix::unistd::getpid().as_raw(), Sig(libc::SIGSTOP));
            }
            Action::RunHook => {
                let argv = self
                    .hook_argv
                    .as_deref()
                    .expect("RunHook only with a hook configured");
                log::info!("running pre-stop hook: {argv:?}");
                match spawn::spawn(&argv[0], &argv[1..], false) {
                    Ok(pid) => self.hook = Some(pid),
                    Err(e) => {
                        log::warn!("pre-stop hook: {e}; forwarding the stop signal now");
                        events.push_back(Event::HookExited);
                    }
                }
            }
            Action::KillHook => {
                if let Some(hook) = self.hook {
                    log::warn!(
                        "pre-stop hook still running after {}: killed it",
                        secs(self.timeline.since_stop())
                    );
                    // The hook leads its own process group (spawn uses process_group(0)).
                    _ = sys::send(-hook.as_raw(), Sig::KILL);
                }
            }
            Action::TermOthers => {
                let others = procs::others();
                log::info!(
                    "sending SIGTERM to {}; SIGKILL in {} at the latest",
                    procs::summarize(&others, 8),
                    secs(self.state.deadline().map_or(Duration::ZERO, |d| {
                        d.saturating_duration_since(Instant::now())
                    }))
                );
                self.timeline.drained = others.len();
                procs::signal_others(Sig::TERM, &others);
            }
            Action::KillAll => {
                let others = procs::others();
                let summary = procs::summarize(&others, 8);
                if self.timeline.killed == 0 {
                    let reason = self.timeline.kill_reason();
                    let after = secs(self.timeline.since_stop());
                    log::warn!("{reason} after {after}: sent SIGKILL to {summary}");
                    self.timeline.killed = others.len();
                } else {
                    log::warn!("still left after SIGKILL, sending it again: {summary}");
                }
                procs::signal_others(Sig::KILL, &others);
            }
        }
    }

    /// The program was stopped. A stop by SIGSTOP was meant: SIGCONT (forwarded) resumes it. A
    /// terminal stop (Ctrl-Z: TSTP; TTIN/TTOU) needs someone above to `fg` the program again:
    /// - as PID 1 there is nobody, and the program and the container's terminal would stay
    ///   frozen; run as PID 1 without grace, the program would have ignored the signal (init has
    ///   no default actions), so grace resumes it at once;
    /// - under a job-control shell, grace stops along with it, as dumb-init does, so the shell
    ///   gets the terminal back; its `fg` continues grace, which hands the terminal back to the
    ///   program and continues it.
    fn on_program_stopped(&mut self, sig: Sig) {
        let Some(main) = self.main else { return };
        let group = -main.as_raw();
        let terminal_stop = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&sig.0);
        if !terminal_stop {
            log::info!("program stopped by {sig}; SIGCONT resumes it");
        } else if procs::is_init() {
            log::info!("program stopped by {sig}; resuming it: no job control above PID 1");
            _ = sys::send(group, Sig(libc::SIGCONT));
        } else if let Some(terminal) = &self.terminal {
            log::info!("program stopped by {sig}; stopping grace too, `fg` resumes both");
            terminal.reclaim();
            // SIGSTOP to ourselves stops grace before kill returns; we go on from here once
            // the shell sends SIGCONT.
            _ = sys::send(nix::unistd::getpid().as_raw(), Sig(libc::SIGSTOP));
            terminal.give_to(main);
            _ = sys::send(group, Sig(libc::SIGCONT));
        } else {
            log::info!("program stopped by {sig}; SIGCONT resumes it");
        }
    }

    fn forward(&self, sig: Sig) {
        let Some(main) = self.main else {
            log::debug!("not forwarding {sig}: the program has exited");
            return;
        };
        let target = if self.group {
            -main.as_raw()
        } else {
            main.as_raw()
        };
        match sys::send(target, sig) {
            Ok(()) => log::debug!(
                "forwarded {sig} to {}",
                if self.group { "group" } else { "pid" }
            ),
            // The program exited and awaits reaping (a zombie still accepts signals, a gone
            // group does not): not an error.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                log::debug!("{sig} not delivered: the program is exiting")
            }
            Err(e) => log::warn!("forwarding {sig} to {target} failed: {e}"),
        }
    }
}

/// What happened when, for log lines and the stop summary.
#[derive(Debug, Default)]
struct Timeline {
    stop: Option<(Sig, Instant)>,
    hook_end: Option<Instant>,
    hook_code: Option<u8>,
    main_exit: Option<Instant>,
    drain_start: Option<Instant>,
    end: Option<Instant>,
    drained: usize,
    killed: usize,
    reaped: usize,
}

impl Timeline {
    fn record(&mut self, from: State, event: Event, to: State, now: Instant) {
        if let (
            State::Running,
            Event::Signal(sig),
            State::Hooking { .. } | State::Stopping { .. },
        ) = (from, event, to)
        {
            self.stop = Some((sig, now));
        }
        if matches!(from, State::Hooking { .. }) && !matches!(to, State::Hooking { .. }) {
            self.hook_end = Some(now);
        }
        if let Event::MainExited { .. } = event {
            self.main_exit = Some(now);
        }
        if matches!(to, State::Draining { .. }) && !matches!(from, State::Draining { .. }) {
            self.drain_start = Some(now);
        }
        if let State::Done { .. } = to {
            self.end = Some(now);
        }
    }

    fn since_stop(&self) -> Duration {
        let start = self.stop.map(|(_, t)| t).or(self.drain_start);
        start.map(|t| t.elapsed()).unwrap_or_default()
    }

    fn kill_reason(&self) -> &'static str {
        if self.main_exit.is_some() {
            "drain time over"
        } else {
            "grace period over"
        }
    }

    /// One info line when grace exits: what started the stop and how long each part took.
    fn log_summary(&self, code: u8, mapped: u8) {
        let status = if code == mapped {
            format!("{code}")
        } else {
            format!("{code} (reported as {mapped})")
        };
        let Some((sig, start)) = self.stop else {
            log::info!("exiting with {status}; {} reaped in all", self.reaped);
            return;
        };
        let ms = |a: Instant, b: Option<Instant>| b.map(|b| secs(b.saturating_duration_since(a)));
        let mut parts = vec![format!("stopped by {sig}")];
        if let Some(hook) = ms(start, self.hook_end) {
            let code = self
                .hook_code
                .map_or("killed".to_string(), |c| format!("exit {c}"));
            parts.push(format!("pre-stop hook {hook} ({code})"));
        }
        match ms(start, self.main_exit) {
            Some(t) => parts.push(format!("program exited after {t}")),
            None => parts.push("program did not exit".into()),
        }
        if self.drained > 0 {
            parts.push(format!("{} others got SIGTERM", self.drained));
        }
        parts.push(match self.killed {
            0 => "nothing killed".into(),
            n => format!("{n} killed"),
        });
        let total = ms(start, self.end).unwrap_or_default();
        log::info!(
            "exiting with {status}: {} (total {total})",
            parts.join(", ")
        );
    }
}

/// "1.25s", for log lines: milliseconds are all anyone reads.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_millis() as f64 / 1000.0)
}

#[cfg(test)]
mod tests;
