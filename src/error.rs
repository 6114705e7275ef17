//! grace's own failures, each with the exit code a caller can rely on.

use std::ffi::OsString;
use std::fmt;
use std::io;

use nix::libc;

/// A failure before or while starting the program. Once the program runs, grace no longer
/// fails: trouble is logged and supervision goes on (a dying PID 1 takes the container with it).
#[derive(Debug)]
pub enum Error {
    /// Bad command line or GRACE_* variable; nothing was started.
    Usage(String),
    /// A set-up step (signal handlers, subreaper, parent-death signal) failed.
    Setup {
        what: &'static str,
        source: io::Error,
    },
    /// The program could not be started.
    Spawn {
        program: OsString,
        source: io::Error,
    },
}

impl Error {
    /// Exit codes follow the shell's conventions, as tini does: 127 not found, 126 found but not
    /// executable (POSIX "Exit Status for Commands"); 2 for usage, as most Unix tools.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Spawn { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
                Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EPERM) => 126,
                _ => 1,
            },
            Error::Setup { .. } => 1,
        }
    }
}

/// The OS error without Rust's "(os error N)" suffix, e.g. "No such file or directory".
pub fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => err.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see 'grace --help')"),
            Error::Setup { what, source } => write!(f, "cannot {what}: {}", describe(source)),
            Error::Spawn { program, source } => {
                let program = program.to_string_lossy();
                match self.exit_code() {
                    127 => write!(f, "'{program}': command not found ({})", describe(source)),
                    126 => write!(f, "'{program}': cannot execute ({})", describe(source)),
                    _ => write!(f, "cannot start '{program}': {}", describe(source)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_error(errno: i32) -> Error {
        Error::Spawn {
            program: "app".into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(spawn_error(libc::ENOENT).exit_code(), 127);
        assert_eq!(spawn_error(libc::EACCES).exit_code(), 126);
        assert_eq!(spawn_error(libc::ENOEXEC).exit_code(), 126);
        assert_eq!(spawn_error(libc::E2BIG).exit_code(), 1);
    }

    #[test]
    fn messages_name_the_input_and_fit_on_one_line() {
        let shown = spawn_error(libc::ENOENT).to_string();
        assert_eq!(
            shown,
            "'app': command not found (No such file or directory)"
        );
        let shown = spawn_error(libc::EACCES).to_string();
        assert_eq!(shown, "'app': cannot execute (Permission denied)");
        for e in [
            spawn_error(libc::E2BIG),
            Error::Usage("unknown option '--x'".into()),
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
