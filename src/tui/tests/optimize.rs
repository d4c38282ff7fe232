//! The Optimize screen: an optimization read from the store as it runs (the lineage tree,
//! what is going on, a candidate's diff against the baseline), Enter and `a` on a
//! candidate, and the store read again every second while one runs.

use std::time::{Duration, Instant};

use promptlab::optimize::split::Split;
use promptlab::optimize::{
    Candidate, CaseOutcome, Request, Scored, Snapshot, State, StrategyKind, Verdict, Version,
};
use promptlab::prompt::{MessageTemplate, Prompt, PromptBody};
use promptlab::store::RunStatus;

use crossterm::event::KeyCode;

use super::{app, draw, key, press, screen_text};
use crate::tui::app::{Effect, Event, Screen};

fn base() -> Prompt {
    Prompt {
        id: "sentiment:zero-shot".into(),
        name: "sentiment".into(),
        variant: Some("zero-shot".into()),
        description: String::new(),
        body: PromptBody::Chat(vec![
            MessageTemplate {
                role: "system".into(),
                content: "You classify the sentiment of movie reviews.".into(),
            },
            MessageTemplate {
                role: "user".into(),
                content: "Review: {{ review }}".into(),
            },
        ]),
        params: Default::default(),
        schema: None,
        tools: Vec::new(),
        source: "prompts/sentiment.yaml".into(),
    }
}

fn scored(passed: usize, cases: usize) -> Scored {
    Scored {
        objective: passed as f64 / cases as f64,
        passed,
        cases,
        mean_score: 0.0,
        macro_f1: None,
        outcomes: (0..cases)
            .map(|i| CaseOutcome {
                case_id: format!("c{i}"),
                passed: i < passed,
                score: 0.0,
                output: String::new(),
                reasons: Vec::new(),
            })
            .collect(),
    }
}

fn candidate(number: usize, parent: Option<usize>, strategy: &str, version: Version) -> Candidate {
    Candidate {
        number,
        round: usize::from(parent.is_some()) + usize::from(number > 2),
        parent,
        strategy: strategy.into(),
        version,
        proposal: String::new(),
        rejected: None,
        run_id: Some(10 + number as i64),
        tuning: None,
    }
}

/// Optimization 4 in its second round: the baseline, a rewrite that scored better, a
/// refused rewrite and a few-shot candidate of the rewrite being evaluated.
fn running() -> Snapshot {
    let base = base();
    let original = Version::of(&base);
    let rewritten = original.with_instruction(
        "You classify the sentiment of movie reviews. Mixed reviews are neutral.",
    );
    let mut candidates = vec![
        candidate(0, None, "baseline", original.clone()),
        candidate(1, Some(0), "rewrite", rewritten.clone()),
        candidate(
            2,
            Some(0),
            "rewrite",
            original.with_instruction("Be brief."),
        ),
        candidate(3, Some(1), "few-shot", rewritten),
    ];
    candidates[0].tuning = Some(scored(14, 27));
    candidates[1].tuning = Some(scored(19, 27));
    candidates[2].rejected = Some("drops {{ review }} (the cases give {{ review }})".into());
    candidates[2].run_id = None;
    Snapshot {
        id: 4,
        eval_set: "sentiment".into(),
        status: RunStatus::Running,
        started_at: "2026-12-06T01:00:00+00:00".into(),
        request: Request {
            prompt: "sentiment:zero-shot".into(),
            model: "smollm2".into(),
            proposer: Some("qwen2.5-0.5b".into()),
            strategies: vec![StrategyKind::Rewrite, StrategyKind::FewShot],
            budget: Some(2000),
            ..Request::default()
        },
        state: State {
            base,
            split: Split {
                tuning: (0..27).map(|i| format!("c{i}")).collect(),
                held_out: (27..45).map(|i| format!("c{i}")).collect(),
                stratified_by: "expected label".into(),
                strata: Default::default(),
            },
            round: 2,
            stale: 0,
            spent_cells: 81,
            stop_reason: None,
            verdict: None,
        },
        candidates,
        in_flight: Some((13, 12, 27)),
    }
}

#[test]
fn the_optimize_screen_shows_the_lineage_and_the_round_in_flight() {
    let mut app = app((140, 40));
    assert_eq!(press(&mut app, "0"), [Effect::ListOptimizations]);
    assert_eq!(app.screen, Screen::Optimize);
    assert!(screen_text(&app).contains("No optimizations"));
    let now = Instant::now();
    app.update(Event::OptimizationsListed(Ok(vec![running()])));
    let screen = screen_text(&app);
    for expected in [
        "0 baseline r0  51.9% [34.0–69.3]",
        "└ 1 rewrite r1  70.4% [51.5–84.1]",
        "└ 2 rewrite r1  refused",
        "  └ 3 few-shot r2  …",
        "round 2: evaluating on the tuning part, 12/27 cells (run 13)",
    ] {
        assert!(screen.contains(expected), "{expected}\n{screen}");
    }
    // The tree is depth first: the few-shot child comes right under its parent.
    assert!(screen.find("└ 1 rewrite").unwrap() < screen.find("└ 3 few-shot").unwrap());
    assert!(screen.find("└ 3 few-shot").unwrap() < screen.find("└ 2 rewrite").unwrap());

    press(&mut app, "j");
    assert_eq!(app.optimize.candidate(), Some(1));
    let screen = screen_text(&app);
    assert!(screen.contains("Mixed reviews are"), "{screen}");
    insta::assert_snapshot!("optimize_140x40", draw(&app).backend().to_string());
    assert_eq!(app.update(key(KeyCode::Enter)), [Effect::LoadRun(11)]);
    assert_eq!(
        press(&mut app, "a"),
        [Effect::AcceptCandidate {
            optimization: 4,
            number: 1
        }]
    );
    // The refused candidate has no run to open.
    press(&mut app, "j");
    press(&mut app, "j");
    assert_eq!(app.optimize.candidate(), Some(2));
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(app.message.as_deref().unwrap().contains("refused"));

    // While it runs, the store is read again every second, not on every tick.
    app.optimize.listed_at = Some(now);
    let tick = |app: &mut crate::tui::app::App, at: Instant| {
        app.update(Event::Tick {
            now: at,
            rss_bytes: None,
        })
    };
    assert!(tick(&mut app, now + Duration::from_millis(300)).is_empty());
    assert_eq!(
        tick(&mut app, now + Duration::from_millis(1100)),
        [Effect::ListOptimizations]
    );
    assert!(tick(&mut app, now + Duration::from_millis(1200)).is_empty());
}

#[test]
fn a_finished_optimization_shows_its_verdict_and_stops_polling() {
    let mut app = app((120, 40));
    press(&mut app, "0");
    let mut snapshot = running();
    snapshot.status = RunStatus::Finished;
    snapshot.in_flight = None;
    snapshot.candidates[3].tuning = Some(scored(20, 27));
    snapshot.state.verdict = Some(Verdict::new(
        Some(20),
        scored(9, 18),
        vec![(3, scored(17, 18)), (1, scored(12, 18))],
        0.05,
    ));
    app.update(Event::OptimizationsListed(Ok(vec![snapshot])));
    let screen = screen_text(&app);
    assert!(
        screen.contains("3 few-shot r2  74.1% [55.3–86.8] ★"),
        "{screen}"
    );
    assert!(
        screen.contains("candidate 3 beats the baseline on the held-out cases"),
        "{screen}"
    );
    assert_eq!(press(&mut app, "h"), [Effect::LoadRun(20)]);
    let later = Instant::now() + Duration::from_secs(5);
    assert!(
        app.update(Event::Tick {
            now: later,
            rss_bytes: None
        })
        .is_empty()
    );
}
