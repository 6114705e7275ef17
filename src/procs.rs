//! The other processes: who a cascade must reach, and what to call them in a log line.
//!
//! As PID 1 of a namespace, "everyone else" is every process in it, and `kill(-1, sig)` reaches
//! them all in one call (it skips the caller; kill(2)). Not as PID 1, `kill(-1)` would hit every
//! process of the user on the host, so grace walks /proc for its own descendants instead.

use std::collections::HashMap;
use std::fs;

use nix::libc;
use nix::unistd::{getpid, Pid};

use crate::signals::Sig;
use crate::sys;

/// A process other than grace, as /proc showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub name: String,
}

/// Whether grace runs as PID 1 of its PID namespace.
pub fn is_init() -> bool {
    getpid() == Pid::from_raw(1)
}

/// Every process the cascade concerns: all others in the namespace as PID 1, else grace's
/// descendants. Empty when /proc is not mounted (signalling still works as PID 1).
pub fn others() -> Vec<Proc> {
    let me = getpid().as_raw();
    let all: Vec<Proc> = match fs::read_dir("/proc") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
            .collect(),
        Err(_) => Vec::new(),
    };
    if is_init() {
        all.into_iter().filter(|p| p.pid != me).collect()
    } else {
        descendants(&all, me)
    }
}

/// Sends `sig` to every other process (see the module docs): as PID 1 with one `kill(-1)`,
/// otherwise to each of `others`. ESRCH means there was nobody left: not an error.
pub fn signal_others(sig: Sig, others: &[Proc]) {
    if is_init() {
        if let Err(e) = sys::send(-1, sig) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("sending {sig} to all processes failed: {e}");
            }
        }
        return;
    }
    for p in others {
        // A descendant that is not our child may exit and be reaped by its own parent between
        // the /proc read and this kill; the window is microseconds and the kernel hands out PIDs
        // in increasing order, so hitting a reused PID needs a full wrap in between.
        match sys::send(p.pid, sig) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => log::warn!("sending {sig} to pid {} ({}) failed: {e}", p.pid, p.name),
        }
    }
}

/// Parses /proc/PID/stat: `pid (comm) state ppid …`. The name may hold spaces and parentheses,
/// so it ends at the *last* ')' (proc(5)).
pub fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc { pid, ppid, name })
}

/// The processes below `root` in the parent tree, `root` excluded.
pub fn descendants(all: &[Proc], root: i32) -> Vec<Proc> {
    let mut children: HashMap<i32, Vec<&Proc>> = HashMap::new();
    for p in all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if child.pid != root {
                todo.push(child.pid);
                found.push((*child).clone());
            }
        }
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// "3 processes: 7 (app), 9 (worker), 12 (sh)", at most `limit` named.
pub fn summarize(procs: &[Proc], limit: usize) -> String {
    let noun = if procs.len() == 1 {
        "process"
    } else {
        "processes"
    };
    let mut s = format!("{} {noun}", procs.len());
    for (i, p) in procs.iter().take(limit).enumerate() {
        s.push_str(if i == 0 { ": " } else { ", " });
        s.push_str(&format!("{} ({})", p.pid, p.name));
    }
    if procs.len() > limit {
        s.push_str(&format!(", and {} more", procs.len() - limit));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, name: &str) -> Proc {
        Proc {
            pid,
            ppid,
            name: name.into(),
        }
    }

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let stat = "42 (my (weird) app) S 7 42 42 0 -1 4194560 100 0 0 0";
        assert_eq!(parse_stat(stat), Some(p(42, 7, "my (weird) app")));
        assert_eq!(parse_stat("1 (init) S 0 1 1"), Some(p(1, 0, "init")));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("5 (x"), None);
    }

    #[test]
    fn descendants_are_the_whole_subtree_and_nothing_else() {
        let all = [
            p(1, 0, "init"),
            p(10, 1, "grace"),
            p(11, 10, "app"),
            p(12, 11, "worker"),
            p(13, 12, "helper"),
            p(20, 1, "stranger"),
            p(21, 20, "its child"),
        ];
        let pids: Vec<i32> = descendants(&all, 10).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [11, 12, 13]);
        assert!(descendants(&all, 13).is_empty());
    }

    #[test]
    fn summaries_name_what_they_count() {
        assert_eq!(summarize(&[], 3), "0 processes");
        assert_eq!(summarize(&[p(7, 1, "app")], 3), "1 process: 7 (app)");
        let many = [p(7, 1, "a"), p(8, 1, "b"), p(9, 1, "c")];
        assert_eq!(summarize(&many, 2), "3 processes: 7 (a), 8 (b), and 1 more");
    }
}
