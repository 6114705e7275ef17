//! The crate's only `unsafe` code: what neither std nor nix offers safely.
//!
//! Three things live here, each because the safe wrappers cannot do it:
//! - [`before_exec`]: work in the forked child between fork and exec (`pre_exec` is unsafe by
//!   nature: only async-signal-safe calls are allowed there, signal-safety(7));
//! - [`send`] and [`wait_any`]: nix's `Signal` and `WaitStatus` cannot name the real-time
//!   signals, so `kill(2)` and `waitpid(2)` are called with raw numbers (process-wrap makes the
//!   same choice for the raw wait status);
//! - [`ignore`]: setting `SIG_IGN` is safe in itself, but nix's `signal()` is `unsafe` for its
//!   handler variant.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;

use crate::signals::{self, Sig};

/// Arranges for the forked child to reset signal state and, if asked, take the terminal.
///
/// std already empties the child's signal mask and resets SIGPIPE before running this hook; exec
/// resets every *caught* signal. What survives exec is an *ignored* disposition: grace ignores
/// SIGTTIN/SIGTTOU, and grace may itself have inherited ignored signals (`nohup`, CI runners).
pub fn before_exec(cmd: &mut Command, take_terminal: bool) {
    let last = signals::rt_max();
    let libc_reserved = signals::libc_reserved();
    // SAFETY: runs in the forked child before exec. It calls only tcsetpgrp(3), getpgrp(2) and
    // signal(2), which are async-signal-safe; no allocation, no locks, no logging.
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
