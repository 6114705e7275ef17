//! The crate's only `unsafe` code: what neither std nor nix offers safely.
//!
//! What lives here, each because the safe wrappers cannot do it:
//! - [`before_exec`]: work in the forked child between fork and exec (`pre_exec` is unsafe by
//!   nature: only async-signal-safe calls are allowed there, signal-safety(7));
//! - [`send`] and [`wait_any`]: nix's `Signal` and `WaitStatus` cannot name the real-time
//!   signals, so `kill(2)` and `waitpid(2)` are called with raw numbers (process-wrap makes the
//!   same choice for the raw wait status);
//! - [`ignore`]: setting `SIG_IGN` is safe in itself, but nix's `signal()` is `unsafe` for its
//!   handler variant;
//! - [`sigset`]: nix's `SigSet::add` takes only `Signal`, which cannot name real-time signals;
//! - [`exit_now`]: `_exit(2)`, which nix 0.32 does not wrap.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;
use nix::sys::signal::SigSet;

use crate::signals::{self, Sig};

/// Arranges for the forked child to reset signal state and, if asked, take the terminal.
///
/// What survives exec, and must be undone here: the signal mask (grace blocks every signal it
/// handles, to read them from a signalfd) and *ignored* dispositions (grace ignores SIGTTIN,
/// SIGTTOU and, as every Rust program, SIGPIPE; a parent may have left others ignored: `nohup`,
/// CI runners). Caught signals are reset by exec itself.
pub fn before_exec(cmd: &mut Command, take_terminal: bool) {
    let last = signals::rt_max();
    let libc_reserved = signals::libc_reserved();
    let empty = SigSet::empty();
    // SAFETY: runs in the forked child before exec. It calls only tcsetpgrp(3), getpgrp(2),
    // signal(2) and pthread_sigmask(3), which are async-signal-safe; no allocation, no locks,
    // no logging. `empty` was built before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            if take_terminal {
                // The child is in its own process group (Command::process_group(0)); a
                // background group calling tcsetpgrp gets SIGTTOU unless it ignores it, which it
                // still does here (inherited from grace). Doing this in the child, not in grace,
                // avoids tini's race: a parent init could otherwise hand the terminal to us
                // after we handed it to the child. Errors (ENOTTY, a lost terminal) only mean
                // the program runs without the foreground, as it would under a plain shell.
                libc::tcsetpgrp(0, libc::getpgrp());
            }
            for sig in 1..=last {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP && !libc_reserved.contains(&sig) {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            // Last, once every disposition is the default: a signal sent to the child since the
            // fork was held pending by the mask and now acts as it would on the program.
            libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ref(), std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Sends `sig` to `pid` (a process, `-pgid` for a group, or -1 for every process we may signal).
pub fn send(pid: i32, sig: Sig) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig.0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One non-blocking `waitpid(-1, WNOHANG | WUNTRACED)`: `Ok(Some((pid, raw_status)))` for a
/// reaped (or stopped) child, `Ok(None)` when children remain but none has changed state.
/// ECHILD comes back as an error.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) };
    match pid {
        0 => Ok(None),
        p if p > 0 => Ok(Some((p, status))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sets `sig` to `SIG_IGN` in grace. [`before_exec`] undoes it for the program.
pub fn ignore(sig: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so no code of ours can run in signal context.
    let old = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A signal set holding `signals`, real-time ones included.
pub fn sigset(signals: impl Iterator<Item = Sig>) -> SigSet {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given, so assume_init is sound after it;
    // sigaddset writes only into that set and fails (EINVAL) only for a number outside
    // 1..=SIGRTMAX, which is then left out.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in signals {
            libc::sigaddset(set.as_mut_ptr(), sig.0);
        }
        SigSet::from_sigset_t_unchecked(set.assume_init())
    }
}

/// Ends grace at once with `code`: no destructors, no std runtime clean-up, no atexit handlers.
/// nix 0.32 has no safe `_exit`. grace writes nothing to stdout while supervising and its log
/// lines are written whole, so nothing buffered is lost.
pub fn exit_now(code: u8) -> ! {
    // SAFETY: _exit(2) takes an integer, touches no memory of ours and never returns.
    unsafe { libc::_exit(code.into()) }
}
