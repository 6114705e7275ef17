//! Personalities: invoked as `tini` or `docker-init`, grace takes tini 0.19's command line; as
//! `dumb-init`, dumb-init 1.2.5's. Switching an image is then a one-line change, or none
//! (`dockerd --init-path`, or grace bind-mounted at /sbin/docker-init, which Docker runs as
//! `docker-init -- PROGRAM ARGS`).
//!
//! Where an image could observe a difference (exit codes, what is printed where, which processes
//! get a signal), the personality matches the original. Where grace is better and compatible (no
//! periodic wake-ups, the drain of leftovers, GRACE_* options), grace's behaviour stays. README's
//! compatibility table lists every remaining difference.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use lexopt::prelude::*;

use crate::cli::{self, Cli, Config};
use crate::error::{describe, Error};
use crate::signals::Sig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    Grace,
    Tini,
    DumbInit,
}

impl Personality {
    /// Chosen by the basename of argv[0].
    pub fn from_argv0(argv0: &OsStr) -> Personality {
        match Path::new(argv0).file_name().and_then(OsStr::to_str) {
            Some("tini" | "tini-static" | "docker-init") => Personality::Tini,
            Some("dumb-init") => Personality::DumbInit,
            _ => Personality::Grace,
        }
    }

    /// The line printed for a start-up failure, and the exit code, as the original would.
    pub fn report(self, e: &Error) -> (String, u8) {
        let pid = std::process::id();
        match (self, e) {
            (Personality::Tini, Error::Spawn { program, source }) => (
                // tini: PRINT_FATAL("exec %s failed: %s", …); ENOENT 127, EACCES 126, else 1.
                format!(
                    "[FATAL tini ({pid})] exec {} failed: {}",
                    program.to_string_lossy(),
                    describe(source)
                ),
                match source.raw_os_error() {
                    Some(nix::libc::ENOENT) => 127,
                    Some(nix::libc::EACCES) => 126,
                    _ => 1,
                },
            ),
            // dumb-init reports exec failure from its forked child, which exits 2.
            (Personality::DumbInit, Error::Spawn { program, source }) => (
                format!(
                    "[dumb-init] {}: {}",
                    program.to_string_lossy(),
                    describe(source)
                ),
                2,
            ),
            (Personality::Tini, _) => (format!("[FATAL tini ({pid})] {e}"), 1),
            (Personality::DumbInit, _) => (format!("[dumb-init] {e}"), 1),
            (Personality::Grace, _) => (format!("grace: {e}"), e.exit_code()),
        }
    }
}

/// Parses `args` (without argv[0]) the way `personality` would.
pub fn parse<I>(
    personality: Personality,
    args: I,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Cli, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    match personality {
        Personality::Grace => cli::parse(args, env),
        Personality::Tini => tini(args, &env),
        Personality::DumbInit => dumb_init(args, &env),
    }
}

/// What `tini --version` prints. Docker's `docker info` runs `docker-init --version`, reads
/// stdout only, and parses "tini version X - git.COMMIT" (daemon/info_unix.go,
/// parseInitVersion): the commit is the text after "git." and may hold no dot.
pub const TINI_VERSION: &str = "tini version 0.19.0 - git.grace\n";

const TINI_USAGE: &str = "\
tini (tini version 0.19.0 - grace)
Usage: tini [OPTIONS] PROGRAM -- [ARGS] | --version

Execute a program under the supervision of a valid init process (tini)

Command line options:

  --version: Show version and exit.
  -h: Show this help message and exit.
  -s: Register as a process subreaper (requires Linux >= 3.4).
  -p SIGNAL: Trigger SIGNAL when parent dies, e.g. \"-p SIGKILL\".
  -v: Generate more verbose output. Repeat up to 3 times.
  -w: Print a warning when processes are getting reaped.
  -g: Send signals to the child's process group.
  -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0.
  -l: Show license and exit.

Environment variables:

  TINI_SUBREAPER: Register as a process subreaper (requires Linux >= 3.4).
  TINI_VERBOSITY: Set the verbosity level (default: 1).
  TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.

This is grace (see 'grace --help'), running with tini's command line.
";

const LICENSE: &str = "\
grace is licensed under the MIT License or the Apache License 2.0, at your option.
It is not tini; it accepts tini's command line.
";

fn exit(stdout: &str, stderr: &str, code: u8) -> Result<Cli, Error> {
    Ok(Cli::Exit {
        stdout: stdout.into(),
        stderr: stderr.into(),
        code,
    })
}

/// tini parses with GNU getopt("+" absent): options may appear anywhere before `--`, and the
/// first `--` is consumed. `tini -g -- prog -x` and `tini prog -- -x` both run `prog -x`;
/// `tini sh -c 'exit 3'` is an error in tini ("invalid option -- 'c'") and so it is here.
fn tini<I>(args: I, env: &impl Fn(&str) -> Option<OsString>) -> Result<Cli, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut cfg = Config {
        personality: Personality::Tini,
        ..cli::defaults(env)?
    };
    // tini's default verbosity is 1 (warnings and errors); each -v adds one.
    let mut verbosity: i64 = 1;
    if let Some(v) = env("TINI_VERBOSITY") {
        verbosity = v.to_str().and_then(|v| v.trim().parse().ok()).unwrap_or(1);
    }
    // TINI_SUBREAPER asks for what grace always does when not PID 1: nothing to set.
    if env("TINI_KILL_PROCESS_GROUP").is_some() {
        cfg.group = true;
    }
    let fatal = |msg: String| {
        exit(
            "",
            &format!("[FATAL tini ({})] {msg}\n", std::process::id()),
            1,
        )
    };
    let mut positional: Vec<OsString> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return exit("", &format!("tini: {e}\n{TINI_USAGE}"), 1),
        };
        match arg {
            Short('h') => return exit(TINI_USAGE, "", 0),
            Long("version") => return exit(TINI_VERSION, "", 0),
            Short('l') => return exit(LICENSE, "", 0),
            Short('s') => {}
            Short('v') => verbosity += 1,
            Short('w') => cfg.warn_on_reap = true,
            Short('g') => cfg.group = true,
            Short('p') => {
                let v = parser.value().unwrap_or_default();
                match v.to_str().and_then(|s| s.parse::<Sig>().ok()) {
                    Some(sig) => cfg.pdeathsig = Some(sig),
                    None => {
                        return fatal(format!(
                            "Not a valid option for -p: {}",
                            v.to_string_lossy()
                        ))
                    }
                }
            }
            Short('e') => {
                let v = parser.value().unwrap_or_default();
                match v.to_str().and_then(|s| s.parse::<u8>().ok()) {
                    Some(code) => cfg.success_exits.push(code),
                    None => {
                        return fatal(format!(
                            "Not a valid option for -e: {}",
                            v.to_string_lossy()
                        ))
                    }
                }
            }
            Value(v) => positional.push(v),
            Short(c) => {
                return exit(
                    "",
                    &format!("tini: invalid option -- '{c}'\n{TINI_USAGE}"),
                    1,
                )
            }
            Long(name) => {
                return exit(
                    "",
                    &format!("tini: unrecognized option '--{name}'\n{TINI_USAGE}"),
                    1,
                )
            }
        }
    }
    let mut positional = positional.into_iter();
    let Some(program) = positional.next() else {
        return exit("", TINI_USAGE, 1);
    };
    cfg.program = program;
    cfg.args = positional.collect();
    cfg.verbosity = verbosity.clamp(1, 4) as u8 - 1;
    Ok(Cli::Run(cfg))
}

const DUMB_INIT_HELP: &str = "\
dumb-init v1.2.5 (grace)
Usage: dumb-init [option] command [[arg] ...]

dumb-init is a simple process supervisor that forwards signals to children.
It is designed to run as PID1 in minimal container environments.

Optional arguments:
   -c, --single-child   Run in single-child mode.
                        In this mode, signals are only proxied to the
                        direct child and not any of its descendants.
   -r, --rewrite s:r    Rewrite received signal s to new signal r before proxying.
                        To ignore (not proxy) a signal, rewrite it to 0.
                        This option can be specified multiple times.
   -v, --verbose        Print debugging information to stderr.
   -h, --help           Print this help message and exit.
   -V, --version        Print the current version and exit.

This is grace (see 'grace --help'), running with dumb-init's command line.
";

const DUMB_INIT_USAGE: &str = "\
Usage: dumb-init [option] program [args]
Try dumb-init --help for full usage.
";

const DUMB_INIT_REWRITE_USAGE: &str = "\
Usage: -r option takes <signum>:<signum>, where <signum> is between 1 and 31.
This option can be specified multiple times.
Use --help for full usage.
";

/// dumb-init parses with getopt_long("+hvVcr:"): options stop at the program, like grace.
///
/// Its default "setsid mode" signals the program's whole process group, and forwards the
/// job-control signals TSTP, TTIN and TTOU as SIGSTOP (a process in an orphaned process group
/// ignores them otherwise), then stops itself; `-c` or DUMB_INIT_SETSID=0 turn all that off.
fn dumb_init<I>(args: I, env: &impl Fn(&str) -> Option<OsString>) -> Result<Cli, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut cfg = Config {
        personality: Personality::DumbInit,
        ..cli::defaults(env)?
    };
    let mut single_child = env("DUMB_INIT_SETSID").is_some_and(|v| v == "0");
    let mut rewrites = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => return exit("", DUMB_INIT_USAGE, 1),
            Err(e) => return exit("", &format!("dumb-init: {e}\n{DUMB_INIT_USAGE}"), 1),
        };
        match arg {
            Short('h') | Long("help") => return exit("", DUMB_INIT_HELP, 0),
            Short('V') | Long("version") => return exit("", "dumb-init v1.2.5\n", 0),
            Short('v') | Long("verbose") => cfg.verbosity = 2,
            Short('c') | Long("single-child") => single_child = true,
            Short('r') | Long("rewrite") => {
                let v = parser.value().unwrap_or_default();
                match v.to_str().and_then(dumb_init_rewrite) {
                    Some(rw) => rewrites.push(rw),
                    None => return exit("", DUMB_INIT_REWRITE_USAGE, 1),
                }
            }
            Value(program) => {
                cfg.program = program;
                cfg.args = parser
                    .raw_args()
                    .map(|raw| raw.collect())
                    .unwrap_or_default();
                break;
            }
            Short(c) => {
                return exit(
                    "",
                    &format!("dumb-init: invalid option -- '{c}'\n{DUMB_INIT_USAGE}"),
                    1,
                )
            }
            Long(name) => {
                return exit(
                    "",
                    &format!("dumb-init: unrecognized option '--{name}'\n{DUMB_INIT_USAGE}"),
                    1,
                )
            }
        }
    }
    if !single_child {
        cfg.group = true;
        cfg.suspend_on_tstp = true;
        cfg.rewrites
            .push((Sig(nix::libc::SIGTSTP), Some(Sig(nix::libc::SIGSTOP))));
    }
    // The user's rewrites come later, so they win over the defaults.
    cfg.rewrites.extend(rewrites.into_iter().flatten());
    Ok(Cli::Run(cfg))
}

/// `s:r`, numbers from 1 to 31 as in dumb-init (r may be 0: drop). Signal names are accepted
/// too. A rewrite of a signal grace never forwards (TTIN, TTOU) is accepted and has no effect:
/// `Ok(None)`.
fn dumb_init_rewrite(s: &str) -> Option<Option<(Sig, Option<Sig>)>> {
    let (from, to) = s.split_once(':')?;
    let from: Sig = from.parse().ok().filter(|s: &Sig| s.0 <= 31)?;
    let to = match to {
        "0" => None,
        _ => Some(to.parse().ok().filter(|s: &Sig| s.0 <= 31)?),
    };
    Some(from.is_forwarded().then_some((from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;

    fn run(p: Personality, args: &[&str], env: &[(&str, &str)]) -> Cli {
        let env: Vec<(String, OsString)> =
            env.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        parse(p, args.iter().copied(), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn config(p: Personality, args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(p, args, env) {
            Cli::Run(cfg) => cfg,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn exit_code(cli: Cli) -> (u8, String, String) {
        match cli {
            Cli::Exit {
                stdout,
                stderr,
                code,
            } => (code, stdout, stderr),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_name_picks_the_personality() {
        assert_eq!(
            Personality::from_argv0("/sbin/docker-init".as_ref()),
            Personality::Tini
        );
        assert_eq!(Personality::from_argv0("tini".as_ref()), Personality::Tini);
        assert_eq!(
            Personality::from_argv0("/usr/bin/dumb-init".as_ref()),
            Personality::DumbInit
        );
        assert_eq!(
            Personality::from_argv0("/grace".as_ref()),
            Personality::Grace
        );
        assert_eq!(
            Personality::from_argv0("tini-wrapper".as_ref()),
            Personality::Grace
        );
    }

    #[test]
    fn docker_runs_docker_init_with_a_double_dash() {
        let cfg = config(
            Personality::Tini,
            &["--", "nginx", "-g", "daemon off;"],
            &[],
        );
        assert_eq!(cfg.program, "nginx");
        assert_eq!(cfg.args, ["-g", "daemon off;"]);
        assert_eq!(cfg.personality, Personality::Tini);
    }

    #[test]
    fn tini_options_anywhere_before_the_double_dash_are_tinis() {
        let cfg = config(
            Personality::Tini,
            &["-s", "prog", "-g", "-e", "143", "--", "-x"],
            &[],
        );
        assert_eq!(
            (cfg.program.as_os_str(), cfg.args.as_slice()),
            ("prog".as_ref(), &["-x".into()][..])
        );
        assert!(cfg.group);
        assert_eq!(cfg.success_exits, [143]);
        let (code, _, stderr) = exit_code(run(Personality::Tini, &["sh", "-c", "exit 3"], &[]));
        assert_eq!(code, 1);
        assert!(
            stderr.starts_with("tini: invalid option -- 'c'\n"),
            "{stderr}"
        );
    }

    #[test]
    fn tini_verbosity_and_environment() {
        assert_eq!(config(Personality::Tini, &["p"], &[]).verbosity, 0);
        assert_eq!(config(Personality::Tini, &["-vv", "p"], &[]).verbosity, 2);
        assert_eq!(
            config(Personality::Tini, &["p"], &[("TINI_VERBOSITY", "3")]).verbosity,
            2
        );
        assert_eq!(
            config(Personality::Tini, &["-vvvvv", "p"], &[]).verbosity,
            3
        );
        assert!(
            config(
                Personality::Tini,
                &["p"],
                &[("TINI_KILL_PROCESS_GROUP", "1")]
            )
            .group
        );
        assert!(config(Personality::Tini, &["-w", "p"], &[]).warn_on_reap);
        assert_eq!(
            config(Personality::Tini, &["-p", "SIGKILL", "p"], &[]).pdeathsig,
            Some(Sig::KILL)
        );
        let grace_env = config(Personality::Tini, &["p"], &[("GRACE_TIMEOUT", "8")]);
        assert_eq!(grace_env.grace, Some(std::time::Duration::from_secs(8)));
    }

    #[test]
    fn tini_help_version_license_and_errors_print_where_tini_does() {
        let (code, out, err) = exit_code(run(Personality::Tini, &["-h"], &[]));
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains("Usage: tini [OPTIONS] PROGRAM -- [ARGS] | --version"));
        let (code, out, _) = exit_code(run(Personality::Tini, &["--version"], &[]));
        assert_eq!((code, out.as_str()), (0, TINI_VERSION));
        assert_eq!(exit_code(run(Personality::Tini, &["-l"], &[])).0, 0);
        let (code, out, err) = exit_code(run(Personality::Tini, &[], &[]));
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("Usage: tini"));
        let (code, _, err) = exit_code(run(Personality::Tini, &["-e", "300", "p"], &[]));
        assert!(
            code == 1 && err.contains("Not a valid option for -e: 300"),
            "{err}"
        );
        let (code, _, err) = exit_code(run(Personality::Tini, &["-p", "NOPE", "p"], &[]));
        assert!(
            code == 1 && err.contains("Not a valid option for -p: NOPE"),
            "{err}"
        );
    }

    #[test]
    fn docker_info_parses_the_version_line() {
        // The same steps as Docker's parseInitVersion.
        let line = TINI_VERSION.trim();
        let (head, tail) = line.split_once(" - ").unwrap();
        assert_eq!(head.strip_prefix("tini version "), Some("0.19.0"));
        let git: Vec<&str> = tail.split('.').collect();
        assert_eq!(git, ["git", "grace"]);
    }

    #[test]
    fn dumb_init_defaults_to_the_group_with_job_control_rewrites() {
        let cfg = config(Personality::DumbInit, &["prog", "-c", "x"], &[]);
        assert_eq!(cfg.args, ["-c", "x"], "options stop at the program");
        assert!(cfg.group && cfg.suspend_on_tstp);
        assert_eq!(
            cfg.rewrites,
            [(Sig(libc::SIGTSTP), Some(Sig(libc::SIGSTOP)))]
        );
        for single in [
            config(Personality::DumbInit, &["-c", "p"], &[]),
            config(Personality::DumbInit, &["p"], &[("DUMB_INIT_SETSID", "0")]),
        ] {
            assert!(!single.group && !single.suspend_on_tstp && single.rewrites.is_empty());
        }
    }

    #[test]
    fn dumb_init_rewrites_take_numbers_and_user_rewrites_win() {
        let cfg = config(
            Personality::DumbInit,
            &["-r", "15:3", "--rewrite", "20:20", "-r", "2:0", "p"],
            &[],
        );
        let want = [
            (Sig(libc::SIGTSTP), Some(Sig(libc::SIGSTOP))),
            (Sig::TERM, Some(Sig::QUIT)),
            (Sig(libc::SIGTSTP), Some(Sig(libc::SIGTSTP))),
            (Sig::INT, None),
        ];
        assert_eq!(cfg.rewrites, want);
        for bad in ["15", "foo:3", "99:3", "15:99", "15:x"] {
            let (code, _, err) = exit_code(run(Personality::DumbInit, &["-r", bad, "p"], &[]));
            assert_eq!((code, err.as_str()), (1, DUMB_INIT_REWRITE_USAGE), "{bad}");
        }
    }

    #[test]
    fn dumb_init_help_version_and_errors_go_to_stderr() {
        let (code, out, err) = exit_code(run(Personality::DumbInit, &["--version"], &[]));
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "", "dumb-init v1.2.5\n")
        );
        let (code, out, err) = exit_code(run(Personality::DumbInit, &["-h"], &[]));
        assert!(code == 0 && out.is_empty() && err.contains("Usage: dumb-init [option] command"));
        let (code, _, err) = exit_code(run(Personality::DumbInit, &[], &[]));
        assert_eq!((code, err.as_str()), (1, DUMB_INIT_USAGE));
        let (code, _, err) = exit_code(run(Personality::DumbInit, &["-x", "p"], &[]));
        assert!(
            code == 1 && err.starts_with("dumb-init: invalid option -- 'x'"),
            "{err}"
        );
    }

    #[test]
    fn start_up_failures_are_reported_like_the_originals() {
        let e = Error::Spawn {
            program: "/nope".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let (line, code) = Personality::DumbInit.report(&e);
        assert_eq!(
            (line.as_str(), code),
            ("[dumb-init] /nope: No such file or directory", 2)
        );
        let (line, code) = Personality::Tini.report(&e);
        assert!(
            line.ends_with("exec /nope failed: No such file or directory"),
            "{line}"
        );
        assert_eq!(code, 127);
        assert_eq!(Personality::Grace.report(&e).1, 127);
    }
}
