//! The results screen's ranking view: a run's pairwise ranking, and the hint for a run
//! without one.

use promptlab::run::PairwiseReport;
use promptlab::score::pairwise::{Comparison, Preference, bootstrap_intervals, bradley_terry};

use super::{app_with_run, draw, press, screen_text};
use crate::tui::app::Screen;

/// A ranking of the synthetic run's three columns from 30 cases of comparisons.
fn report(columns: &[String]) -> PairwiseReport {
    let mut comparisons = Vec::new();
    for case in 0..30 {
        let pick = |n: usize| match case % n {
            0 => Preference::Tie,
            1 | 2 => Preference::B,
            _ => Preference::A,
        };
        comparisons.push(Comparison {
            case,
            a: 0,
            b: 1,
            preference: pick(5),
        });
        comparisons.push(Comparison {
            case,
            a: 0,
            b: 2,
            preference: pick(4),
        });
        comparisons.push(Comparison {
            case,
            a: 1,
            b: 2,
            preference: pick(7),
        });
    }
    let strengths = bradley_terry(3, &comparisons);
    let intervals = bootstrap_intervals(3, &comparisons, 200, 1);
    let mut ranking: Vec<serde_json::Value> = (0..3)
        .map(|c| {
            serde_json::json!({
                "column": c,
                "column_id": columns[c],
                "strength": strengths[c],
                "interval": intervals[c],
                "win_probability": promptlab::score::pairwise::win_probability_vs_average(strengths[c]),
            })
        })
        .collect();
    ranking.sort_by(|x, y| {
        y["strength"]
            .as_f64()
            .unwrap()
            .total_cmp(&x["strength"].as_f64().unwrap())
    });
    let tally = |a: usize, b: usize| {
        let mine: Vec<&Comparison> = comparisons
            .iter()
            .filter(|c| c.a == a && c.b == b)
            .collect();
        let count = |p: Preference| mine.iter().filter(|c| c.preference == p).count();
        serde_json::json!({"a": a, "b": b, "wins_a": count(Preference::A), "ties": count(Preference::Tie), "wins_b": count(Preference::B)})
    };
    serde_json::from_value(serde_json::json!({
        "judge": "qwen2.5-1.5b",
        "criterion": "Which reply greets the person more warmly?",
        "outcomes": comparisons.iter().map(|c| serde_json::json!({
            "case": c.case, "a": c.a, "b": c.b, "preference": c.preference,
            "reasons": ["", ""], "order_disagreed": false, "error": null,
        })).collect::<Vec<_>>(),
        "tallies": [tally(0, 1), tally(0, 2), tally(1, 2)],
        "ranking": ranking,
        "order_disagreements": 11,
        "errors": 0,
        "seconds": 42.0,
    }))
    .unwrap()
}

#[test]
fn p_toggles_the_ranking_view() {
    for size in [(120, 40), (80, 24)] {
        let mut app = app_with_run(size);
        app.screen = Screen::Results;
        press(&mut app, "p");
        assert!(app.results.show_ranking);
        let hint = screen_text(&app);
        assert!(hint.contains("--pairwise --judge MODEL"), "{hint}");

        let columns = app.matrix.as_ref().unwrap().columns.clone();
        app.matrix.as_mut().unwrap().pairwise = Some(report(&columns));
        insta::assert_snapshot!(
            format!("ranking_{}x{}", size.0, size.1),
            draw(&app).backend()
        );
        let text = screen_text(&app);
        assert!(
            text.contains("1.") && text.contains("2.") && text.contains("3."),
            "{text}"
        );
        assert!(text.contains("11 order disagreements"), "{text}");

        press(&mut app, "p");
        assert!(!app.results.show_ranking);
        assert!(screen_text(&app).contains("pass rate"));
    }
}
