//! Reaping: turn every exited child into nothing, and the ones we track into exit codes.

use std::io;

use nix::libc;
use nix::unistd::Pid;

use crate::sys;

/// What one drain of `waitpid` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The main program's exit code, if it was among the reaped.
    pub main: Option<u8>,
    /// The pre-stop hook's exit code, if it was among the reaped.
    pub hook: Option<u8>,
    /// The signal that stopped the main program (job control), if it was reported stopped.
    pub main_stopped: Option<i32>,
    /// How many children were reaped in all (tracked ones included).
    pub count: usize,
    /// False once `waitpid` says ECHILD: grace has no child left. Since orphans are re-parented
    /// to grace (as init or subreaper) before their parent is reported as exited, that means no
    /// descendant is left either.
    pub children_left: bool,
}

/// Standard signals don't queue: one SIGCHLD may stand for many exits, so drain
/// `waitpid(-1, WNOHANG)` until it reports nothing ready or ECHILD. Stops are reported too
/// (WUNTRACED), for the main program's job control; a stopped process is not reaped.
/// With `warn`, every reaped orphan is logged as a warning (tini's -w), else at debug level.
pub fn reap_all(main: Option<Pid>, hook: Option<Pid>, warn: bool) -> io::Result<Reaped> {
    let level = if warn {
        log::Level::Warn
    } else {
        log::Level::Debug
    };
    let mut reaped = Reaped {
        children_left: true,
        ..Reaped::default()
    };
    loop {
        match sys::wait_any() {
            Ok(Some((pid, status))) if libc::WIFSTOPPED(status) => {
                if Some(Pid::from_raw(pid)) == main {
                    reaped.main_stopped = Some(libc::WSTOPSIG(status));
                }
            }
            Ok(Some((pid, status))) => {
                reaped.count += 1;
                let pid = Pid::from_raw(pid);
                if Some(pid) == main {
                    reaped.main = exit_code(status);
                } else if Some(pid) == hook {
                    reaped.hook = exit_code(status);
                } else {
                    log::log!(level, "reaped pid {pid} ({})", describe(status));
                }
            }
            Ok(None) => return Ok(reaped),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                reaped.children_left = false;
                return Ok(reaped);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The shell's convention: the exit code, or 128+N when signal N killed the process.
/// `None` for a stop or continue report, which is not an exit.
pub fn exit_code(status: i32) -> Option<u8> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status) as u8)
    } else if libc::WIFSIGNALED(status) {
        Some((128 + libc::WTERMSIG(status)) as u8)
    } else {
        None
    }
}

/// "exit 3" or "killed by SIGTERM", for logs.
pub fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = crate::signals::Sig(libc::WTERMSIG(status));
        let core = if libc::WCOREDUMP(status) {
            ", core dumped"
        } else {
            ""
        };
        format!("killed by {sig}{core}")
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Raw wait statuses as the kernel encodes them (wait(2)): exit code in bits 8..16,
    // terminating signal in bits 0..7, 0x80 for a core dump, 0x7f for a stop.
    fn exited(code: i32) -> i32 {
        code << 8
    }

    #[test]
    fn exit_codes_pass_through_for_all_256() {
        for code in 0..=255 {
            assert_eq!(exit_code(exited(code)), Some(code as u8));
        }
    }

    #[test]
    fn signaled_child_exits_128_plus_n() {
        assert_eq!(exit_code(libc::SIGTERM), Some(143));
        assert_eq!(exit_code(libc::SIGKILL), Some(137));
        assert_eq!(exit_code(libc::SIGSEGV | 0x80), Some(139));
        let rt = libc::SIGRTMIN() + 1;
        assert_eq!(exit_code(rt), Some((128 + rt) as u8));
    }

    #[test]
    fn stops_are_not_exits() {
        assert_eq!(exit_code((libc::SIGTSTP << 8) | 0x7f), None);
        assert_eq!(exit_code(0xffff), None); // continued
    }

    #[test]
    fn statuses_describe_themselves() {
        assert_eq!(describe(exited(3)), "exit 3");
        assert_eq!(describe(libc::SIGTERM), "killed by SIGTERM");
        assert_eq!(
            describe(libc::SIGSEGV | 0x80),
            "killed by SIGSEGV, core dumped"
        );
    }
}
