//! `step` is pure: these tests pass an `Instant` in and never sleep.

use super::*;
use Action::*;
use Event::*;
use State::*;

const S: Duration = Duration::from_secs(1);

fn policy(grace: Option<u64>, drain: u64) -> Policy {
    Policy {
        grace: grace.map(Duration::from_secs),
        drain: Duration::from_secs(drain),
        hook_timeout: 5 * S,
        ..Policy::default()
    }
}

fn hooked(grace: Option<u64>) -> Policy {
    Policy {
        hook: true,
        ..policy(grace, 3)
    }
}

/// Runs `events` from `Running`, each one second after the last; returns the states and
/// actions seen.
fn walk(p: &Policy, events: &[Event]) -> Vec<(State, Vec<Action>)> {
    let t0 = Instant::now();
    let mut state = Running;
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let (next, actions) = step(state, *e, t0 + S * i as u32, p);
        out.push((next, actions));
        state = next;
    }
    out
}

#[test]
fn first_stop_signal_is_forwarded_and_arms_the_grace_deadline() {
    let t0 = Instant::now();
    for sig in [Sig::TERM, Sig::INT, Sig::QUIT] {
        let (state, actions) = step(Running, Signal(sig), t0, &policy(Some(10), 3));
        assert_eq!(
            state,
            Stopping {
                kill_at: Some(t0 + 10 * S)
            }
        );
        assert_eq!(actions, [Forward(sig)]);
    }
}

#[test]
fn without_a_grace_period_a_stop_arms_no_deadline() {
    let (state, actions) = step(Running, Signal(Sig::TERM), Instant::now(), &policy(None, 3));
    assert_eq!(state, Stopping { kill_at: None });
    assert_eq!(state.deadline(), None);
    assert_eq!(actions, [Forward(Sig::TERM)]);
}

#[test]
fn other_signals_are_forwarded_and_change_nothing() {
    let t0 = Instant::now();
    for sig in [
        Sig(nix::libc::SIGHUP),
        Sig(nix::libc::SIGUSR1),
        Sig(nix::libc::SIGRTMIN() + 2),
    ] {
        assert_eq!(
            step(Running, Signal(sig), t0, &policy(Some(10), 3)),
            (Running, vec![Forward(sig)])
        );
    }
}

#[test]
fn second_sigterm_keeps_the_first_deadline() {
    let steps = walk(
        &policy(Some(10), 3),
        &[Signal(Sig::TERM), Signal(Sig::TERM), Signal(Sig::INT)],
    );
    let first = steps[0].0;
    assert_eq!(steps[1], (first, vec![Forward(Sig::TERM)]));
    assert_eq!(steps[2], (first, vec![Forward(Sig::INT)]));
}

#[test]
fn program_exiting_alone_ends_grace_with_its_code_in_any_live_state() {
    let t0 = Instant::now();
    let live = [
        Running,
        Stopping { kill_at: None },
        Stopping { kill_at: Some(t0) },
    ];
    for state in live {
        for code in [0, 1, 137, 255] {
            let got = step(
                state,
                MainExited { code, alone: true },
                t0,
                &policy(Some(1), 3),
            );
            assert_eq!(got, (Done { code }, vec![]));
        }
    }
}

#[test]
fn program_exit_with_others_left_starts_the_drain() {
    let t0 = Instant::now();
    let got = step(
        Running,
        MainExited {
            code: 4,
            alone: false,
        },
        t0,
        &policy(None, 3),
    );
    assert_eq!(
        got,
        (
            Draining {
                code: 4,
                kill_at: t0 + 3 * S
            },
            vec![TermOthers]
        )
    );
}

#[test]
fn during_a_stop_the_earlier_of_drain_and_grace_deadline_applies() {
    let t0 = Instant::now();
    let soon = Stopping {
        kill_at: Some(t0 + S),
    };
    let got = step(
        soon,
        MainExited {
            code: 0,
            alone: false,
        },
        t0,
        &policy(Some(1), 3),
    );
    assert_eq!(
        got,
        (
            Draining {
                code: 0,
                kill_at: t0 + S
            },
            vec![TermOthers]
        )
    );
    let late = Stopping {
        kill_at: Some(t0 + 60 * S),
    };
    let got = step(
        late,
        MainExited {
            code: 0,
            alone: false,
        },
        t0,
        &policy(Some(60), 3),
    );
    assert_eq!(
        got,
        (
            Draining {
                code: 0,
                kill_at: t0 + 3 * S
            },
            vec![TermOthers]
        )
    );
}

#[test]
fn zero_drain_kills_leftovers_at_once_and_keeps_the_programs_code() {
    let t0 = Instant::now();
    let got = step(
        Running,
        MainExited {
            code: 5,
            alone: false,
        },
        t0,
        &policy(None, 0),
    );
    assert_eq!(
        got,
        (
            Killing {
                code: Some(5),
                retry_at: t0 + KILL_RETRY
            },
            vec![KillAll]
        )
    );
    assert_eq!(
        step(got.0, AllGone, t0, &policy(None, 0)),
        (Done { code: 5 }, vec![])
    );
}

#[test]
fn grace_deadline_kills_everything_and_the_program_reports_137() {
    let p = policy(Some(10), 3);
    let steps = walk(
        &p,
        &[
            Signal(Sig::TERM),
            Deadline,
            MainExited {
                code: 137,
                alone: true,
            },
        ],
    );
    assert!(matches!(steps[1], (Killing { code: None, .. }, ref a) if a == &[KillAll]));
    assert_eq!(steps[2], (Done { code: 137 }, vec![]));
}

#[test]
fn killing_waits_for_the_last_process_after_the_program() {
    let p = policy(Some(10), 3);
    let steps = walk(
        &p,
        &[
            Signal(Sig::TERM),
            Deadline,
            MainExited {
                code: 137,
                alone: false,
            },
            AllGone,
        ],
    );
    assert_eq!(
        steps[2].0,
        Killing {
            code: Some(137),
            retry_at: steps[1].0.deadline().unwrap()
        }
    );
    assert_eq!(steps[2].1, []);
    assert_eq!(steps[3], (Done { code: 137 }, vec![]));
}

#[test]
fn drain_ends_when_the_others_are_gone_or_at_its_deadline() {
    let p = policy(None, 3);
    let gone = walk(
        &p,
        &[
            MainExited {
                code: 2,
                alone: false,
            },
            AllGone,
        ],
    );
    assert_eq!(gone[1], (Done { code: 2 }, vec![]));
    let late = walk(
        &p,
        &[
            MainExited {
                code: 2,
                alone: false,
            },
            Deadline,
            AllGone,
        ],
    );
    assert!(matches!(late[1], (Killing { code: Some(2), .. }, ref a) if a == &[KillAll]));
    assert_eq!(late[2], (Done { code: 2 }, vec![]));
}

#[test]
fn signals_after_the_program_exited_go_nowhere() {
    let p = policy(None, 3);
    let steps = walk(
        &p,
        &[
            MainExited {
                code: 0,
                alone: false,
            },
            Signal(Sig::TERM),
            Signal(Sig(nix::libc::SIGHUP)),
        ],
    );
    assert_eq!(steps[1], (steps[0].0, vec![]));
    assert_eq!(steps[2], (steps[0].0, vec![]));
}

#[test]
fn spurious_deadlines_and_events_change_nothing() {
    let t0 = Instant::now();
    let p = policy(None, 3);
    for state in [Running, Stopping { kill_at: None }] {
        assert_eq!(step(state, Deadline, t0, &p), (state, vec![]));
        assert_eq!(step(state, HookExited, t0, &p), (state, vec![]));
    }
    let killing = Killing {
        code: None,
        retry_at: t0,
    };
    assert_eq!(step(killing, HookExited, t0, &p), (killing, vec![]));
    assert_eq!(step(Running, AllGone, t0, &p), (Running, vec![]));
    let done = Done { code: 3 };
    for e in [
        Signal(Sig::TERM),
        Deadline,
        AllGone,
        HookExited,
        MainExited {
            code: 9,
            alone: true,
        },
    ] {
        assert_eq!(step(done, e, t0, &p), (done, vec![]));
    }
}

#[test]
fn rewrites_change_what_is_forwarded_and_drops_ignore_the_signal_entirely() {
    let mut p = policy(Some(10), 3);
    p.rewrites = vec![
        (Sig::TERM, Some(Sig::QUIT)),
        (Sig(nix::libc::SIGHUP), None),
        (Sig(nix::libc::SIGHUP), Some(Sig::INT)),
    ];
    let t0 = Instant::now();
    // Received TERM still means "stop": the clock starts, QUIT goes out.
    let (state, actions) = step(Running, Signal(Sig::TERM), t0, &p);
    assert_eq!(
        (state, actions),
        (
            Stopping {
                kill_at: Some(t0 + 10 * S)
            },
            vec![Forward(Sig::QUIT)]
        )
    );
    // Later entries win; a dropped signal neither forwards nor starts a stop.
    assert_eq!(
        step(Running, Signal(Sig(nix::libc::SIGHUP)), t0, &p).1,
        [Forward(Sig::INT)]
    );
    p.rewrites.push((Sig::INT, None));
    assert_eq!(step(Running, Signal(Sig::INT), t0, &p), (Running, vec![]));
}

#[test]
fn hook_runs_before_the_stop_signal_is_forwarded() {
    let t0 = Instant::now();
    let (state, actions) = step(Running, Signal(Sig::TERM), t0, &hooked(Some(30)));
    assert_eq!(actions, [RunHook]);
    let want = Hooking {
        signal: Sig::TERM,
        hook_deadline: t0 + 5 * S,
        kill_at: Some(t0 + 30 * S),
    };
    assert_eq!(state, want);
    let (next, actions) = step(state, HookExited, t0 + S, &hooked(Some(30)));
    assert_eq!(
        (next, actions),
        (
            Stopping {
                kill_at: Some(t0 + 30 * S)
            },
            vec![Forward(Sig::TERM)]
        )
    );
}

#[test]
fn a_hook_that_outlives_its_timeout_is_killed_and_the_signal_goes_anyway() {
    let steps = walk(&hooked(None), &[Signal(Sig::TERM), Deadline]);
    assert_eq!(
        steps[1],
        (
            Stopping { kill_at: None },
            vec![KillHook, Forward(Sig::TERM)]
        )
    );
}

#[test]
fn the_hook_never_gets_more_than_the_grace_period() {
    let t0 = Instant::now();
    let (state, _) = step(Running, Signal(Sig::TERM), t0, &hooked(Some(2)));
    assert_eq!(state.deadline(), Some(t0 + 2 * S));
}

#[test]
fn during_the_hook_other_signals_pass_and_stop_signals_wait() {
    let p = hooked(None);
    let steps = walk(
        &p,
        &[
            Signal(Sig::TERM),
            Signal(Sig(nix::libc::SIGHUP)),
            Signal(Sig::INT),
        ],
    );
    assert_eq!(
        steps[1],
        (steps[0].0, vec![Forward(Sig(nix::libc::SIGHUP))])
    );
    assert_eq!(steps[2], (steps[0].0, vec![]));
}

#[test]
fn program_exiting_during_the_hook_drains_the_hook_too() {
    let t0 = Instant::now();
    let (state, _) = step(Running, Signal(Sig::TERM), t0, &hooked(Some(30)));
    let (next, actions) = step(
        state,
        MainExited {
            code: 0,
            alone: false,
        },
        t0,
        &hooked(Some(30)),
    );
    assert_eq!(
        (next, actions),
        (
            Draining {
                code: 0,
                kill_at: t0 + 3 * S
            },
            vec![TermOthers]
        )
    );
}

#[test]
fn running_and_done_have_no_deadline() {
    let t0 = Instant::now();
    assert_eq!(Running.deadline(), None);
    assert_eq!(
        Killing {
            code: None,
            retry_at: t0
        }
        .deadline(),
        Some(t0)
    );
    assert_eq!(Done { code: 0 }.deadline(), None);
    assert_eq!(
        Draining {
            code: 0,
            kill_at: t0
        }
        .deadline(),
        Some(t0)
    );
}

#[test]
fn success_exits_map_to_0_and_every_other_code_passes_for_all_256() {
    for code in 0..=255u8 {
        assert_eq!(reported(code, &[]), code);
        assert_eq!(reported(code, &[code]), 0);
        assert_eq!(reported(code, &[code.wrapping_add(1)]), code);
        assert_eq!(reported(code, &[7, code, 9]), 0);
    }
}

#[test]
fn dumb_init_style_tstp_is_forwarded_then_grace_suspends_itself() {
    let mut p = policy(None, 3);
    p.suspend_on_tstp = true;
    p.rewrites = vec![(Sig(nix::libc::SIGTSTP), Some(Sig(nix::libc::SIGSTOP)))];
    let got = step(Running, Signal(Sig(nix::libc::SIGTSTP)), Instant::now(), &p);
    assert_eq!(
        got,
        (Running, vec![Forward(Sig(nix::libc::SIGSTOP)), SuspendSelf])
    );
    // Without the flag, TSTP is just forwarded.
    p.suspend_on_tstp = false;
    assert_eq!(
        step(Running, Signal(Sig(nix::libc::SIGTSTP)), Instant::now(), &p).1,
        [Forward(Sig(nix::libc::SIGSTOP))]
    );
}

#[test]
fn while_anything_is_left_the_sigkill_is_repeated_every_second() {
    let t0 = Instant::now();
    let p = policy(Some(1), 3);
    let killing = Killing {
        code: Some(137),
        retry_at: t0,
    };
    let (next, actions) = step(killing, Deadline, t0, &p);
    assert_eq!(
        (next, actions),
        (
            Killing {
                code: Some(137),
                retry_at: t0 + KILL_RETRY
            },
            vec![KillAll]
        )
    );
    assert_eq!(step(next, AllGone, t0, &p), (Done { code: 137 }, vec![]));
}
