//! Which signals grace forwards, which it never touches, and the one source they come from.
//!
//! grace blocks every signal it handles and reads them from a signalfd(2), the only thing its
//! single thread ever waits on (catatonit's design: "no need for select(2) or epoll(2) or
//! anything equivalently clever"). No handler runs in signal context, no self-pipe, no second
//! thread: a signal wakes grace once, and it forwards from there.
//!
//! Kernel facts this module relies on:
//! - A PID namespace's init never receives a signal whose disposition is the default (SIGKILL
//!   and SIGSTOP from an ancestor namespace excepted; pid_namespaces(7)), *unless it is blocked*:
//!   a blocked signal is never ignored at generation time, since the handler could change before
//!   it is unblocked (kernel/signal.c, sig_ignored). So blocking every signal we forward is what
//!   makes PID 1 receive them.
//! - Blocked signals stay pending until read; standard signals don't queue (two SIGCHLDs may
//!   arrive as one, so the reaper drains), real-time signals do.
//! - The signal mask is inherited across fork and exec; std empties it in the child before exec.

use std::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::str::FromStr;
use std::time::Instant;

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::getpid;

/// A signal number. Not nix's `Signal`, which cannot name the real-time signals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sig(pub i32);

impl Sig {
    pub const INT: Sig = Sig(libc::SIGINT);
    pub const QUIT: Sig = Sig(libc::SIGQUIT);
    pub const KILL: Sig = Sig(libc::SIGKILL);
    pub const TERM: Sig = Sig(libc::SIGTERM);
    pub const CHLD: Sig = Sig(libc::SIGCHLD);

    /// The signals that start the stop cascade. SIGTERM is what `docker stop` and Kubernetes
    /// send by default; SIGINT is Ctrl-C; SIGQUIT is the graceful stop of nginx-style servers
    /// (and a common Docker STOPSIGNAL).
    pub fn is_stop(self) -> bool {
        self == Sig::TERM || self == Sig::INT || self == Sig::QUIT
    }

    /// Whether grace forwards this signal when it receives it.
    pub fn is_forwarded(self) -> bool {
        forwarded().any(|s| s == self)
    }
}

/// Never forwarded, with the reason:
/// - fault signals (SEGV, ILL, BUS, FPE, ABRT, TRAP, SYS) are synchronous: one aimed at grace
///   means a bug in grace, which must kill it loudly rather than be passed on;
/// - SIGKILL and SIGSTOP cannot be caught;
/// - SIGCHLD is grace's own business (reaping);
/// - SIGTTIN and SIGTTOU are what the terminal driver sends grace itself for reading or writing
///   a terminal it no longer has in the foreground: grace ignores them so a log line can never
///   freeze PID 1.
///
/// SIGPIPE is forwarded only when someone else sent it (see [`Source::next`]).
const NEVER: [i32; 12] = [
    libc::SIGSEGV,
    libc::SIGILL,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGCHLD,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The highest signal number (SIGRTMAX).
pub fn rt_max() -> i32 {
    libc::SIGRTMAX()
}

/// Numbers between the standard and the real-time signals that the C library keeps for itself
/// (glibc: 32 and 33, musl: 32 to 34, for thread cancellation and setxid). Never touched.
pub fn libc_reserved() -> Range<i32> {
    32..libc::SIGRTMIN()
}

/// Every signal grace forwards, in ascending order: all catchable asynchronous signals,
/// standard and real-time.
pub fn forwarded() -> impl Iterator<Item = Sig> {
    (1..=rt_max())
        .filter(|n| !NEVER.contains(n) && !libc_reserved().contains(n))
        .map(Sig)
}

/// The signals grace waits for: every forwarded one and SIGCHLD, blocked and read from a
/// signalfd.
pub struct Source {
    fd: SignalFd,
}

impl Source {
    /// Blocks every forwarded signal and SIGCHLD (and unblocks all others, whatever mask a
    /// parent handed down), ignores SIGTTIN/SIGTTOU, and opens the signalfd.
    ///
    /// Call it before spawning anything: a signal that arrives during start-up then waits,
    /// pending, instead of being dropped.
    pub fn listen() -> io::Result<Source> {
        crate::sys::ignore(libc::SIGTTIN)?;
        crate::sys::ignore(libc::SIGTTOU)?;
        let mask = crate::sys::sigset(forwarded().chain([Sig::CHLD]));
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)?;
        // Close-on-exec: the program must not inherit it.
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
        Ok(Source { fd })
    }

    /// Waits for the next signal; `Ok(None)` once `deadline` has passed first. Without a
    /// deadline it sleeps until a signal comes: no periodic wake-up.
    pub fn next(&self, deadline: Option<Instant>) -> io::Result<Option<Sig>> {
        loop {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                // Rounded up, so we never wake a hair early and spin; beyond poll's range
                // (24 days) we wake at the range's end and wait again.
                let ms = left.as_nanos().div_ceil(1_000_000);
                let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(0) => continue, // timed out: the deadline check above decides
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            // Without a deadline the read itself blocks (the signalfd is not O_NONBLOCK): one
            // system call per signal instead of poll + read, as catatonit.
            let info = match self.fd.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let sig = Sig(info.ssi_signo as i32);
            // The kernel raises SIGPIPE for our own write to a closed pipe (our stderr, say)
            // as if we had sent it to ourselves (si_pid = our pid). That one is grace's
            // business; a SIGPIPE someone else sent is forwarded like any signal.
            // Not logged: with a broken stderr, the log line would raise the next one.
            if sig.0 == libc::SIGPIPE && info.ssi_pid as i32 == getpid().as_raw() {
                continue;
            }
            return Ok(Some(sig));
        }
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, max) = (libc::SIGRTMIN(), rt_max());
        match Signal::try_from(self.0) {
            Ok(s) => f.write_str(s.as_str()),
            Err(_) if self.0 == min => f.write_str("SIGRTMIN"),
            Err(_) if self.0 == max => f.write_str("SIGRTMAX"),
            Err(_) if self.0 > min && self.0 < max => write!(f, "SIGRTMIN+{}", self.0 - min),
            Err(_) => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Sig {
    type Err = String;

    /// Accepts `TERM`, `SIGTERM`, `term`, `15`, `RTMIN`, `SIGRTMIN+3`, `RTMAX-1`.
    fn from_str(s: &str) -> Result<Sig, String> {
        let bad = || format!("unknown signal '{s}'");
        let (min, max) = (libc::SIGRTMIN(), rt_max());
        if let Some(n) = s
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<i32>().ok())
            .flatten()
        {
            return match (1..=max).contains(&n) && !libc_reserved().contains(&n) {
                true => Ok(Sig(n)),
                false => Err(bad()),
            };
        }
        let upper = s.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        // RTMIN counts up (`RTMIN+n`), RTMAX counts down (`RTMAX-n`), as in kill(1).
        let rt = |rest: &str, base: i32, sign: char| -> Result<Sig, String> {
            let n = match rest.strip_prefix(sign) {
                None if rest.is_empty() => base,
                Some(k) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => {
                    let k: i32 = k.parse().map_err(|_| bad())?;
                    let n = if sign == '+' {
                        base.checked_add(k)
                    } else {
                        base.checked_sub(k)
                    };
                    n.ok_or_else(bad)?
                }
                _ => return Err(bad()),
            };
            match (min..=max).contains(&n) {
                true => Ok(Sig(n)),
                false => Err(bad()),
            }
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return rt(rest, min, '+');
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return rt(rest, max, '-');
        }
        Signal::from_str(&format!("SIG{name}"))
            .map(|s| Sig(s as i32))
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<i32, String> {
        s.parse::<Sig>().map(|s| s.0)
    }

    #[test]
    fn names_parse_with_or_without_sig_in_any_case() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15"] {
            assert_eq!(parse(s), Ok(libc::SIGTERM), "{s}");
        }
        assert_eq!(parse("HUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("winch"), Ok(libc::SIGWINCH));
    }

    #[test]
    fn real_time_signals_parse_relative_to_their_ends() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(parse("RTMIN"), Ok(min));
        assert_eq!(parse("SIGRTMIN+3"), Ok(min + 3));
        assert_eq!(parse("RTMAX"), Ok(max));
        assert_eq!(parse("rtmax-2"), Ok(max - 2));
        assert!(parse("RTMIN-1").is_err());
        assert!(parse("RTMAX+1").is_err());
        assert!(parse(&format!("RTMIN+{}", max - min + 1)).is_err());
        assert!(parse("RTMIN+2147483647").is_err(), "no overflow");
        assert!(parse("RTMAX-2147483647").is_err());
        assert!(parse("RTMIN+99999999999").is_err());
    }

    #[test]
    fn unknown_names_and_numbers_are_rejected_with_the_input_quoted() {
        for s in [
            "", "SIG", "TERMX", "0", "-1", "65", "32", "RTMIN+", "RTMINx", "+15",
        ] {
            let err = parse(s).expect_err(s);
            assert!(err.contains(&format!("'{s}'")), "{err}");
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        for n in 1..=libc::SIGRTMAX() {
            if libc_reserved().contains(&n) {
                continue;
            }
            let shown = Sig(n).to_string();
            assert_eq!(parse(&shown), Ok(n), "{shown}");
        }
    }

    #[test]
    fn forwarded_set_has_the_async_signals_and_no_fault_or_job_output_signal() {
        let fwd: Vec<i32> = forwarded().map(|s| s.0).collect();
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGALRM,
            libc::SIGCONT,
            libc::SIGTSTP,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(fwd.contains(&s), "{} should be forwarded", Sig(s));
        }
        for s in NEVER.iter().chain(&[32, 33]) {
            assert!(!fwd.contains(s), "{} must not be forwarded", Sig(*s));
        }
    }

    #[test]
    fn only_term_int_and_quit_are_stop_signals() {
        let stops: Vec<Sig> = forwarded().filter(|s| s.is_stop()).collect();
        assert_eq!(stops, [Sig::INT, Sig::QUIT, Sig::TERM]);
    }
}
