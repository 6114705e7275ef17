//! Starting the program (and the pre-stop hook).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::Pid;

use crate::error::Error;
use crate::sys;

/// Starts `program` in a process group of its own, with default signal dispositions and an empty
/// signal mask. It inherits stdin/stdout/stderr, the environment and every descriptor grace
/// inherited (socket activation); descriptors grace opened itself are close-on-exec.
///
/// With `take_terminal`, the program's group becomes the terminal's foreground group, so the
/// terminal driver's Ctrl-C and Ctrl-Z reach it directly.
///
/// Exec failures come back here, not as an exit of the child: std reports the child's exec
/// errno through a close-on-exec pipe, so "not found" and "not executable" become 127 and 126.
pub fn spawn(program: &OsString, args: &[OsString], take_terminal: bool) -> Result<Pid, Error> {
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    sys::before_exec(&mut cmd, take_terminal);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    // Dropping `child` neither waits nor kills: reap.rs owns the wait.
    Ok(Pid::from_raw(child.id() as i32))
}
