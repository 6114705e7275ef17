//! Property tests of the command line (fuzzing on stable Rust; cargo-fuzz needs nightly): no
//! argument list, GRACE_* value, duration, command or signal name makes parsing panic, and
//! every rejection is a usage error (exit 2) with a one-line message.
//!
//! `cargo test proptests` runs 2048 cases per property; `PROPTEST_CASES=200000` runs more (see
//! docs/reliability.md). Failures are not persisted: a failing case is printed, shrunk.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::prelude::*;

use super::*;

const VARS: [&str; 8] = [
    "GRACE_TIMEOUT",
    "GRACE_DRAIN",
    "GRACE_GROUP",
    "GRACE_PRE_STOP",
    "GRACE_PRE_STOP_TIMEOUT",
    "GRACE_REWRITE",
    "GRACE_SUCCESS_EXIT",
    "GRACE_PDEATHSIG",
];

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2048;
    }
    config
}

/// One argument or value: raw bytes (non-UTF-8 and NUL included), any Unicode, or pieces
/// shaped like grace's own syntax, so that deep paths of the parsers are reached too. Numbers
/// stay below ten digits: see `rt_offsets_near_i32_max_are_rejected_without_overflow` for longer ones.
fn word() -> impl Strategy<Value = OsString> {
    let options = prop::sample::select(vec![
        "-t",
        "--grace",
        "--drain",
        "-g",
        "--group",
        "--pre-stop",
        "--pre-stop-timeout",
        "--rewrite",
        "--success-exit",
        "--pdeathsig",
        "-v",
        "-vv",
        "-gvt",
        "--verbose",
        "-h",
        "--help",
        "-V",
        "--version",
        "--",
        "-",
        "--grace=",
        "--rewrite=TERM:",
    ]);
    prop_oneof![
        any::<Vec<u8>>().prop_map(OsString::from_vec),
        any::<String>().prop_map(OsString::from),
        options.prop_map(OsString::from),
        "[0-9]{0,9}(\\.[0-9]{0,3})?(ms|s|m|h|x|)?".prop_map(OsString::from),
        "(SIG|sig)?(TERM|term|HUP|RTMIN|RTMAX|KILL|SEGV|NOPE)?([+-][0-9]{0,9})?(:(0|TERM|RTMIN\\+[0-9]{0,9}))?(,[A-Z:0-9]{0,6}){0,2}"
            .prop_map(OsString::from),
        "[ a'\"\\\\\t\n$`-]{0,12}".prop_map(OsString::from),
    ]
}

fn args() -> impl Strategy<Value = Vec<OsString>> {
    prop::collection::vec(word(), 0..8)
}

fn has_newline(s: &OsString) -> bool {
    s.as_encoded_bytes().contains(&b'\n')
}

/// Parses with `env` as the GRACE_* variables.
fn parse_with(args: &[OsString], env: &[Option<OsString>]) -> Result<Cli, Error> {
    parse(args.to_vec(), |name| {
        let i = VARS.iter().position(|v| *v == name)?;
        env[i].clone()
    })
}

/// Parsing never panics; a rejection is a usage error (exit 2) whose message is one line.
fn check_parse(args: &[OsString], env: &[Option<OsString>]) -> Result<(), TestCaseError> {
    match parse_with(args, env) {
        Ok(_) => {}
        Err(e @ Error::Usage(_)) => {
            prop_assert_eq!(e.exit_code(), 2);
            let shown = e.to_string();
            prop_assert!(!shown.trim().is_empty());
            // An input holding a newline is quoted as is; the fatal line escapes it when printed
            // (tests/reliability.rs: control_characters_and_huge_rt_offsets_still_give_one_line).
            let newline_in_input = args.iter().chain(env.iter().flatten()).any(has_newline);
            prop_assert!(newline_in_input || !shown.contains('\n'), "{:?}", shown);
        }
        Err(other) => prop_assert!(false, "not a usage error: {:?}", other),
    }
    Ok(())
}

/// Shell-quotes `word` with single quotes, so that `command` must give it back as is.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arguments_never_panic_and_are_rejected_only_with_a_one_line_usage_error(args in args()) {
        check_parse(&args, &vec![None; VARS.len()])?;
    }

    #[test]
    fn each_variable_alone_never_panics_and_is_rejected_only_with_a_usage_error(
        var in 0..VARS.len(),
        value in word(),
    ) {
        let mut env = vec![None; VARS.len()];
        env[var] = Some(value);
        check_parse(&["app".into()], &env)?;
    }

    #[test]
    fn arguments_and_a_few_variables_together(
        args in args(),
        env in prop::collection::vec(prop::option::weighted(0.1, word()), VARS.len()),
    ) {
        check_parse(&args, &env)?;
    }

    #[test]
    fn durations_never_panic_and_accept_only_a_number_with_a_unit(s in any::<String>()) {
        if duration(&s).is_ok() {
            prop_assert!(s.starts_with(|c: char| c.is_ascii_digit()), "{:?}", s);
        }
    }

    #[test]
    fn durations_in_every_unit_mean_what_they_say(n in 0u32..1_000_000_000) {
        let n64 = u64::from(n);
        prop_assert_eq!(duration(&format!("{n}ms")), Ok(Duration::from_millis(n64)));
        prop_assert_eq!(duration(&format!("{n}")), Ok(Duration::from_secs(n64)));
        prop_assert_eq!(duration(&format!("{n}s")), Ok(Duration::from_secs(n64)));
        prop_assert_eq!(duration(&format!("{n}m")), Ok(Duration::from_secs(60 * n64)));
        prop_assert_eq!(duration(&format!("{n}h")), Ok(Duration::from_secs(3600 * n64)));
    }

    #[test]
    fn commands_never_panic(s in any::<String>()) {
        if let Ok(words) = command(&s) {
            prop_assert!(!words.is_empty());
        }
    }

    #[test]
    fn shell_quoted_words_come_back_as_they_were(
        words in prop::collection::vec(any::<String>(), 1..6),
        blanks in prop::collection::vec("[ \t\n]{1,3}", 6),
    ) {
        let mut line = String::new();
        for (word, blank) in words.iter().zip(&blanks) {
            line.push_str(&quoted(word));
            line.push_str(blank);
        }
        let want: Vec<OsString> = words.iter().map(OsString::from).collect();
        prop_assert_eq!(command(&line), Ok(want));
    }

    #[test]
    fn signal_names_never_panic_and_name_only_real_signals(s in any::<String>()) {
        match s.parse::<Sig>() {
            Ok(sig) => {
                prop_assert!((1..=crate::signals::rt_max()).contains(&sig.0), "{:?}", s);
                prop_assert!(!crate::signals::libc_reserved().contains(&sig.0), "{:?}", s);
            }
            Err(msg) => prop_assert!(msg.contains(&format!("'{s}'")), "{:?}", msg),
        }
    }

    #[test]
    fn signal_names_parse_in_any_case_with_or_without_sig(
        name in prop::sample::select(vec!["TERM", "HUP", "WINCH", "USR1", "RTMIN", "RTMIN+3", "RTMAX-2"]),
        prefix in prop::sample::select(vec!["", "SIG", "sig", "Sig"]),
        flips in prop::collection::vec(any::<bool>(), 8),
    ) {
        let mixed: String = name
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &flip)| if flip { c.to_ascii_lowercase() } else { c })
            .collect();
        let spelled = format!("{prefix}{mixed}");
        prop_assert_eq!(spelled.parse::<Sig>(), name.parse::<Sig>(), "{}", spelled);
        prop_assert!(name.parse::<Sig>().is_ok());
    }
}

#[test]
fn rt_offsets_near_i32_max_are_rejected_without_overflow() {
    for k in [2_147_483_614_i64, 2_147_483_647] {
        let s = format!("RTMIN+{k}");
        assert!(s.parse::<Sig>().is_err(), "{s}");
        let args = ["--pdeathsig", s.as_str(), "app"];
        assert!(matches!(parse(args, |_| None), Err(Error::Usage(_))));
    }
}
