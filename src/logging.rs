//! grace's own log lines: stderr only (stdout belongs to the program), no timestamps (runtimes
//! add them), and never a reason for PID 1 to block or die.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use nix::libc;

/// GRACE_LOG (env_logger's filter syntax), not RUST_LOG: that one belongs to the program.
/// `-v` and `-vv` win over it.
pub fn init(verbosity: u8) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(log::LevelFilter::Warn)
        .parse_env(env_logger::Env::new().filter("GRACE_LOG"))
        .format(|buf, rec| writeln!(buf, "[grace {}] {}", rec.level(), rec.args()));
    match verbosity {
        0 => {}
        1 => _ = builder.filter_level(log::LevelFilter::Info),
        2 => _ = builder.filter_level(log::LevelFilter::Debug),
        _ => _ = builder.filter_level(log::LevelFilter::Trace),
    }
    if let Some(stderr) = private_stderr() {
        builder.target(env_logger::Target::Pipe(Box::new(stderr)));
    }
    builder.init();
}

/// stderr opened anew, non-blocking, when it is a pipe or a terminal: a log line must never
/// block PID 1, but Docker's log pipe fills up when its reader stalls, and a terminal's output
/// stops on Ctrl-S. O_NONBLOCK on stderr itself would reach the program too (the flag belongs to
/// the open file description, which the program shares), so grace opens its own description
/// through /proc/self/fd/2. A line that would block is cut or dropped instead.
///
/// Not for regular files: a new description of a file has an offset of its own and would write
/// over the program's output. Not without /proc. Those keep the plain, blocking stderr.
fn private_stderr() -> Option<File> {
    let path = "/proc/self/fd/2";
    let kind = std::fs::metadata(path).ok()?.file_type();
    if !(kind.is_fifo() || kind.is_char_device()) {
        return None;
    }
    OpenOptions::new()
        .write(true)
        // O_NOCTTY: opening a terminal must not make it grace's controlling terminal.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()
}

/// Prints a fatal line on stderr: always one line, since control characters from the input it
/// quotes (`--grace $'1\nx'`) are escaped. A closed stderr loses the line but never the exit
/// code: `eprintln!` would panic there.
pub fn fatal(line: &str) {
    _ = writeln!(io::stderr(), "{}", one_line(line));
}

fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fatal_lines_stay_one_line() {
        assert_eq!(
            super::one_line("bad '1\nx\t\u{1b}[31m' ok é"),
            "bad '1\\nx\\t\\u{1b}[31m' ok é"
        );
    }
}
