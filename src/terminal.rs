//! The terminal, when grace runs interactively (`docker run -it IMAGE grace -- bash`): who has
//! the foreground, and the modes to put back at the end.
//!
//! The program leads a process group of its own and becomes the terminal's foreground group
//! (sys::before_exec), so the terminal driver sends Ctrl-C, Ctrl-\ and Ctrl-Z, and resizes
//! (SIGWINCH), to it directly, as when it runs without grace. grace, in the background from then
//! on, ignores SIGTTIN/SIGTTOU (signals.rs): its writes and tcsetpgrp calls go through instead of
//! stopping PID 1.

use std::io;

use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, Termios};
use nix::unistd::{getpgrp, isatty, tcgetpgrp, tcsetpgrp, Pid};

pub struct Terminal {
    /// The modes at start, restored at the end (a program killed in raw mode leaves them raw).
    saved: Termios,
}

impl Terminal {
    /// `Some` when stdin is a terminal and grace is in its foreground group. A grace started in
    /// the background (`grace app &` in a shell) must not steal the terminal; without a terminal
    /// none of this applies, silently.
    pub fn claim() -> Option<Terminal> {
        let stdin = io::stdin();
        if !isatty(&stdin).unwrap_or(false) || tcgetpgrp(&stdin).ok() != Some(getpgrp()) {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        Some(Terminal { saved })
    }

    /// Makes `pgrp` the foreground group. Errors mean the terminal is gone (hung up): nothing
    /// left to hand over, so they are only logged.
    pub fn give_to(&self, pgrp: Pid) {
        if let Err(e) = tcsetpgrp(io::stdin(), pgrp) {
            log::debug!("tcsetpgrp({pgrp}): {e}");
        }
    }

    /// Takes the foreground back for grace's own group.
    pub fn reclaim(&self) {
        self.give_to(getpgrp());
    }

    /// Puts back the modes saved at start and takes the foreground back, so the terminal is
    /// sane for whatever comes after grace.
    pub fn restore(&self) {
        if let Err(e) = tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved) {
            log::debug!("restoring terminal modes: {e}");
        }
        self.reclaim();
    }
}
