//! The command line and its GRACE_* environment twins.
//!
//! Parsing stops at the first positional argument: that is the program, and everything after
//! it is the program's, as in POSIX mode (lexopt's examples/posixly_correct.rs). So
//! `grace sh -c 'exit 3'` works without `--`.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use lexopt::prelude::*;

use crate::compat::Personality;
use crate::error::Error;
use crate::signals::Sig;

pub const HELP: &str = "\
grace: a minimal PID 1 that forwards signals, reaps zombies and stops everything gracefully

Usage: grace [OPTIONS] [--] PROGRAM [ARGS...]

Options (each also read from the environment variable in brackets; the flag wins):
  -t, --grace DURATION        after the first stop signal (TERM, INT, QUIT), SIGKILL whatever is
                              still running once DURATION has passed [GRACE_TIMEOUT]
                              (default: no limit; the runtime's stop timeout decides)
      --drain DURATION        once the program has exited, how long other processes get after
                              SIGTERM before SIGKILL; 0 kills them at once [GRACE_DRAIN] (default 3s)
  -g, --group                 forward signals to the program's process group [GRACE_GROUP]
      --pre-stop COMMAND      on the first stop signal, run COMMAND (split into words like a shell,
                              no shell started) and wait for it before forwarding [GRACE_PRE_STOP]
      --pre-stop-timeout DURATION
                              how long the pre-stop command may run [GRACE_PRE_STOP_TIMEOUT]
                              (default 5s, never beyond --grace)
      --rewrite FROM:TO       forward signal FROM as TO; TO=0 drops FROM (repeatable)
                              [GRACE_REWRITE, comma-separated]
      --success-exit CODE     report the program's exit code CODE as 0 (repeatable)
                              [GRACE_SUCCESS_EXIT, comma-separated]
      --pdeathsig SIGNAL      when not PID 1: treat the death of grace's parent as receiving
                              SIGNAL [GRACE_PDEATHSIG]
  -v, --verbose               log lifecycle events; -vv also every signal and reap [GRACE_LOG]
  -h, --help                  print this help
  -V, --version               print the version

DURATION: 10, 10s, 1500ms, 2m, 1h, 0.5s.  SIGNAL: TERM, SIGTERM, 15, RTMIN+2.
Exit status: the program's (128+N if signal N killed it); 2 usage error, 126 program not
executable, 127 program not found, 1 other start-up failure.
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    Help,
    Version,
    /// Print and exit without running anything (a personality's help, version, usage error).
    Exit {
        stdout: String,
        stderr: String,
        code: u8,
    },
    Run(Config),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// `None`: no limit of grace's own.
    pub grace: Option<Duration>,
    pub drain: Duration,
    pub group: bool,
    /// Number of `-v` flags.
    pub verbosity: u8,
    /// The pre-stop command as argv.
    pub pre_stop: Option<Vec<OsString>>,
    pub pre_stop_timeout: Duration,
    /// `(from, to)`; `to == None` drops the signal. Later entries win.
    pub rewrites: Vec<(Sig, Option<Sig>)>,
    pub success_exits: Vec<u8>,
    pub pdeathsig: Option<Sig>,
    /// Whose command line this was: decides how start-up failures are reported.
    pub personality: Personality,
    /// Log every reaped orphan as a warning (tini's -w).
    pub warn_on_reap: bool,
    /// After forwarding SIGTSTP, stop grace too when not PID 1 (dumb-init's job control).
    pub suspend_on_tstp: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            program: OsString::new(),
            args: Vec::new(),
            grace: None,
            drain: Duration::from_secs(3), // as s6-overlay's S6_KILL_FINISH_MAXTIME default
            group: false,
            verbosity: 0,
            pre_stop: None,
            pre_stop_timeout: Duration::from_secs(5),
            rewrites: Vec::new(),
            success_exits: Vec::new(),
            pdeathsig: None,
            personality: Personality::Grace,
            warn_on_reap: false,
            suspend_on_tstp: false,
        }
    }
}

/// Parses `args` (without argv[0]) over defaults taken from `env`.
pub fn parse<I>(args: I, env: impl Fn(&str) -> Option<OsString>) -> Result<Cli, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut cfg = defaults(env)?;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help),
            Short('V') | Long("version") => return Ok(Cli::Version),
            Short('v') | Long("verbose") => cfg.verbosity = cfg.verbosity.saturating_add(1),
            Short('g') | Long("group") => cfg.group = true,
            Short('t') | Long("grace") => {
                cfg.grace = Some(value(&mut parser, "--grace", duration)?)
            }
            Long("drain") => cfg.drain = value(&mut parser, "--drain", duration)?,
            Long("pre-stop") => cfg.pre_stop = Some(value(&mut parser, "--pre-stop", command)?),
            Long("pre-stop-timeout") => {
                cfg.pre_stop_timeout = value(&mut parser, "--pre-stop-timeout", duration)?
            }
            Long("rewrite") => cfg.rewrites.push(value(&mut parser, "--rewrite", rewrite)?),
            Long("success-exit") => {
                cfg.success_exits
                    .push(value(&mut parser, "--success-exit", exit_code)?)
            }
            Long("pdeathsig") => cfg.pdeathsig = Some(value(&mut parser, "--pdeathsig", signal)?),
            Value(program) => {
                cfg.program = program;
                cfg.args = parser.raw_args()?.collect();
                return Ok(Cli::Run(cfg));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Err(Error::Usage("missing PROGRAM to run".into()))
}

/// The defaults, with the GRACE_* variables that are set applied. An empty variable counts as
/// unset. Every personality starts from these, so GRACE_TIMEOUT works under `docker-init` too.
pub fn defaults(env: impl Fn(&str) -> Option<OsString>) -> Result<Config, Error> {
    let mut cfg = Config::default();
    from_env(&mut cfg, env)?;
    Ok(cfg)
}

fn from_env(cfg: &mut Config, env: impl Fn(&str) -> Option<OsString>) -> Result<(), Error> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(v) = get("GRACE_TIMEOUT") {
        cfg.grace = Some(check("GRACE_TIMEOUT", &v, duration)?);
    }
    if let Some(v) = get("GRACE_DRAIN") {
        cfg.drain = check("GRACE_DRAIN", &v, duration)?;
    }
    if let Some(v) = get("GRACE_GROUP") {
        cfg.group = check("GRACE_GROUP", &v, boolean)?;
    }
    if let Some(v) = get("GRACE_PRE_STOP") {
        cfg.pre_stop = Some(check("GRACE_PRE_STOP", &v, command)?);
    }
    if let Some(v) = get("GRACE_PRE_STOP_TIMEOUT") {
        cfg.pre_stop_timeout = check("GRACE_PRE_STOP_TIMEOUT", &v, duration)?;
    }
    if let Some(v) = get("GRACE_REWRITE") {
        cfg.rewrites = check("GRACE_REWRITE", &v, |s| list(s, rewrite))?;
    }
    if let Some(v) = get("GRACE_SUCCESS_EXIT") {
        cfg.success_exits = check("GRACE_SUCCESS_EXIT", &v, |s| list(s, exit_code))?;
    }
    if let Some(v) = get("GRACE_PDEATHSIG") {
        cfg.pdeathsig = Some(check("GRACE_PDEATHSIG", &v, signal)?);
    }
    Ok(())
}

/// Takes the option's value and parses it, naming the option and quoting the value on failure.
fn value<T>(
    parser: &mut lexopt::Parser,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, Error> {
    let raw = parser.value()?;
    check(what, &raw, parse)
}

pub fn check<T>(
    what: &str,
    raw: &OsStr,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, Error> {
    let shown = raw.to_string_lossy();
    let text = raw
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid {what} '{shown}': not valid UTF-8")))?;
    parse(text).map_err(|why| Error::Usage(format!("invalid {what} '{shown}': {why}")))
}

/// `10`, `10s`, `1500ms`, `2m`, `1h`, `0.5s`. A bare number is seconds, as in `docker stop -t`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let well_formed = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    if !well_formed {
        return Err("expected a number with an optional unit: 10, 10s, 1500ms, 2m, 1h".into());
    }
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit '{unit}' (use ms, s, m or h)")),
    };
    let n: f64 = number.parse().map_err(|_| "not a number".to_string())?;
    Duration::try_from_secs_f64(n * seconds_per_unit).map_err(|_| "too large".to_string())
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected 1/true/yes/on or 0/false/no/off".into()),
    }
}

pub fn signal(s: &str) -> Result<Sig, String> {
    s.parse()
}

pub fn exit_code(s: &str) -> Result<u8, String> {
    s.parse()
        .map_err(|_| "expected an exit code from 0 to 255".into())
}

/// `FROM:TO`, where TO may be `0` to drop FROM.
fn rewrite(s: &str) -> Result<(Sig, Option<Sig>), String> {
    let (from, to) = s
        .split_once(':')
        .ok_or("expected FROM:TO, e.g. TERM:QUIT")?;
    let from: Sig = from.parse()?;
    if !from.is_forwarded() {
        return Err(format!(
            "{from} is never forwarded, so it cannot be rewritten"
        ));
    }
    let to = match to {
        "0" => None,
        _ => Some(to.parse()?),
    };
    Ok((from, to))
}

fn list<T>(s: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(item)
        .collect()
}

/// Splits a command into words the way a shell would for a simple command: blanks separate
/// words, '…' is literal, "…" is literal except for \" \\ \$ \`, a backslash quotes the next
/// character. No variables, globs or operators: nothing is run through a shell, so the command
/// works in a `FROM scratch` image. For shell syntax, write `sh -c '…'`.
pub fn command(s: &str) -> Result<Vec<OsString>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take().map(OsString::from)),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next().ok_or("unterminated '")? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next().ok_or("unterminated \"")? {
                        '"' => break,
                        '\\' => match chars.next().ok_or("unterminated \"")? {
                            c @ ('"' | '\\' | '$' | '`') => w.push(c),
                            c => w.extend(['\\', c]),
                        },
                        c => w.push(c),
                    }
                }
            }
            '\\' => word
                .get_or_insert_with(String::new)
                .push(chars.next().ok_or("trailing \\")?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word.map(OsString::from));
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::Usage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, Error> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        parse(args.iter().copied(), |k| env.get(k).cloned())
    }

    fn config(args: &[&str]) -> Config {
        match parse_with(args, &[]) {
            Ok(Cli::Run(cfg)) => cfg,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn usage_error(args: &[&str], env: &[(&str, &str)]) -> String {
        match parse_with(args, env) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("{args:?} {env:?} should be a usage error, got {other:?}"),
        }
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn child_args_after_program_are_not_ours() {
        let cfg = config(&["sh", "-c", "exit 3", "--grace", "-v"]);
        assert_eq!(cfg.program, "sh");
        assert_eq!(cfg.args, os(&["-c", "exit 3", "--grace", "-v"]));
        assert_eq!(cfg.verbosity, 0);
        assert_eq!(cfg.grace, None);
    }

    #[test]
    fn double_dash_ends_options_even_before_a_dash_program() {
        let cfg = config(&["-v", "--", "-weird", "--help"]);
        assert_eq!(cfg.program, "-weird");
        assert_eq!(cfg.args, os(&["--help"]));
        assert_eq!(cfg.verbosity, 1);
    }

    #[test]
    fn defaults_leave_the_stop_timeout_to_the_runtime() {
        let cfg = config(&["app"]);
        assert_eq!(
            cfg,
            Config {
                program: "app".into(),
                ..Config::default()
            }
        );
        assert_eq!(cfg.grace, None);
        assert_eq!(cfg.drain, Duration::from_secs(3));
    }

    #[test]
    fn every_option_parses() {
        let cfg = config(&[
            "-t",
            "10",
            "--drain=1500ms",
            "-g",
            "-vv",
            "--pre-stop",
            "sleep 2",
            "--pre-stop-timeout",
            "1m",
            "--rewrite",
            "TERM:QUIT",
            "--rewrite",
            "WINCH:0",
            "--success-exit",
            "143",
            "--success-exit=130",
            "--pdeathsig",
            "KILL",
            "app",
        ]);
        assert_eq!(cfg.grace, Some(Duration::from_secs(10)));
        assert_eq!(cfg.drain, Duration::from_millis(1500));
        assert!(cfg.group);
        assert_eq!(cfg.verbosity, 2);
        assert_eq!(cfg.pre_stop, Some(os(&["sleep", "2"])));
        assert_eq!(cfg.pre_stop_timeout, Duration::from_secs(60));
        assert_eq!(
            cfg.rewrites,
            [(Sig::TERM, Some(Sig::QUIT)), (Sig(libc_winch()), None)]
        );
        assert_eq!(cfg.success_exits, [143, 130]);
        assert_eq!(cfg.pdeathsig, Some(Sig::KILL));
    }

    fn libc_winch() -> i32 {
        nix::libc::SIGWINCH
    }

    #[test]
    fn environment_sets_defaults_and_flags_win() {
        let env = [
            ("GRACE_TIMEOUT", "20s"),
            ("GRACE_DRAIN", "0"),
            ("GRACE_GROUP", "yes"),
            ("GRACE_PRE_STOP", "/bin/deregister --now"),
            ("GRACE_PRE_STOP_TIMEOUT", "2"),
            ("GRACE_REWRITE", "TERM:QUIT, INT:0"),
            ("GRACE_SUCCESS_EXIT", "143,130"),
            ("GRACE_PDEATHSIG", "SIGTERM"),
        ];
        let Ok(Cli::Run(cfg)) = parse_with(&["-t", "5", "app"], &env) else {
            panic!()
        };
        assert_eq!(cfg.grace, Some(Duration::from_secs(5)));
        assert_eq!(cfg.drain, Duration::ZERO);
        assert!(cfg.group);
        assert_eq!(cfg.pre_stop, Some(os(&["/bin/deregister", "--now"])));
        assert_eq!(cfg.pre_stop_timeout, Duration::from_secs(2));
        assert_eq!(
            cfg.rewrites,
            [(Sig::TERM, Some(Sig::QUIT)), (Sig::INT, None)]
        );
        assert_eq!(cfg.success_exits, [143, 130]);
        assert_eq!(cfg.pdeathsig, Some(Sig::TERM));
    }

    #[test]
    fn empty_environment_variables_count_as_unset() {
        let Ok(Cli::Run(cfg)) = parse_with(&["app"], &[("GRACE_TIMEOUT", "")]) else {
            panic!()
        };
        assert_eq!(cfg.grace, None);
    }

    #[test]
    fn help_and_version_win_over_everything_before_the_program() {
        assert_eq!(parse_with(&["-t", "5", "-h"], &[]).unwrap(), Cli::Help);
        assert_eq!(parse_with(&["--version"], &[]).unwrap(), Cli::Version);
        assert!(matches!(
            parse_with(&["app", "-h"], &[]).unwrap(),
            Cli::Run(_)
        ));
    }

    #[test]
    fn durations() {
        let ok = [
            ("0", 0),
            ("10", 10_000),
            ("10s", 10_000),
            ("1500ms", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0.5s", 500),
            ("1.25", 1250),
        ];
        for (s, ms) in ok {
            assert_eq!(duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in [
            "", "s", "-1", "1x", "1.", ".5", "1..2", "1e3", "inf", "NaN", "10 s", "1m30s",
        ] {
            assert!(duration(s).is_err(), "{s} should be rejected");
        }
        assert!(duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors_that_name_the_option_and_quote_the_input() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&["--grace", "10x", "app"], &[], "invalid --grace '10x'"),
            (&["-t"], &[], "missing argument for option '-t'"),
            (&["--drain", "soon", "app"], &[], "invalid --drain 'soon'"),
            (
                &["--rewrite", "TERM", "app"],
                &[],
                "invalid --rewrite 'TERM'",
            ),
            (
                &["--rewrite", "FOO:TERM", "app"],
                &[],
                "unknown signal 'FOO'",
            ),
            (&["--rewrite", "SEGV:TERM", "app"], &[], "never forwarded"),
            (
                &["--rewrite", "TERM:BAR", "app"],
                &[],
                "unknown signal 'BAR'",
            ),
            (
                &["--success-exit", "256", "app"],
                &[],
                "invalid --success-exit '256'",
            ),
            (
                &["--pdeathsig", "NOPE", "app"],
                &[],
                "invalid --pdeathsig 'NOPE'",
            ),
            (&["--pre-stop", "'open", "app"], &[], "unterminated"),
            (&["--pre-stop", "  ", "app"], &[], "empty command"),
            (&["--bogus", "app"], &[], "--bogus"),
            (&["-x", "app"], &[], "-x"),
            (&[], &[], "missing PROGRAM"),
            (&["-v"], &[], "missing PROGRAM"),
            (
                &["app"],
                &[("GRACE_TIMEOUT", "ten")],
                "invalid GRACE_TIMEOUT 'ten'",
            ),
            (
                &["app"],
                &[("GRACE_GROUP", "maybe")],
                "invalid GRACE_GROUP 'maybe'",
            ),
            (
                &["app"],
                &[("GRACE_REWRITE", "TERM:QUIT,HUP")],
                "invalid GRACE_REWRITE",
            ),
            (
                &["app"],
                &[("GRACE_SUCCESS_EXIT", "1,x")],
                "invalid GRACE_SUCCESS_EXIT",
            ),
        ];
        for (args, env, needle) in cases {
            let msg = usage_error(args, env);
            assert!(msg.contains(needle), "{args:?}: {msg:?} lacks {needle:?}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }

    #[test]
    fn non_utf8_option_values_are_usage_errors_and_non_utf8_program_args_pass() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'1', 0xff]);
        let err = parse([OsString::from("-t"), bad.clone(), "app".into()], |_| None);
        assert!(matches!(err, Err(Error::Usage(m)) if m.contains("UTF-8")));
        let ok = parse([OsString::from("app"), bad.clone()], |_| None).unwrap();
        assert!(matches!(ok, Cli::Run(cfg) if cfg.args == [bad]));
    }

    #[test]
    fn commands_split_like_a_shell_without_running_one() {
        let cases: &[(&str, &[&str])] = &[
            ("sleep 5", &["sleep", "5"]),
            ("  a\tb  ", &["a", "b"]),
            (
                "sh -c 'curl -X DELETE http://r/x; sleep 2'",
                &["sh", "-c", "curl -X DELETE http://r/x; sleep 2"],
            ),
            (r#"echo "a \"b\" \$c \n""#, &["echo", r#"a "b" $c \n"#]),
            (r"a\ b ''", &["a b", ""]),
            ("x'y'\"z\"", &["xyz"]),
        ];
        for (input, want) in cases {
            assert_eq!(command(input), Ok(os(want)), "{input}");
        }
        for bad in ["", "   ", "'x", "\"x", "x\\"] {
            assert!(command(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod proptests;
