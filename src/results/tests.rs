//! Unit tests of the run matrix: placement, column statistics, filters, orders, word diff.

use super::*;
use crate::store::RunStatus;

fn run_row() -> RunRow {
    RunRow {
        id: 1,
        eval_set: "set".into(),
        eval_set_path: "/nowhere/set.yaml".into(),
        started_at: "2026-11-28T00:00:00Z".into(),
        finished_at: None,
        status: RunStatus::Finished,
        cell_count: 6,
        cells_done: 6,
        passed: 3,
        label: None,
        cached: 0,
        columns: Vec::new(),
        config_digest: None,
    }
}

fn cell(column: usize, case: usize, passed: bool, score: f64, latency_ms: f64) -> StoredCell {
    StoredCell {
        column_index: column,
        case_index: case,
        column_id: format!("p{column} @ m"),
        case_id: format!("c{case}"),
        cache_key: String::new(),
        prompt_json: "null".into(),
        output: String::new(),
        error: None,
        passed,
        score,
        assertions_json: "[]".into(),
        finish: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        ttft_ms: 0.0,
        latency_ms,
        tokens_per_s: None,
        cached: column == 1,
        logprobs_json: None,
    }
}

fn matrix() -> RunMatrix {
    let cells = vec![
        cell(0, 0, true, 1.0, 10.0),
        cell(1, 0, true, 1.0, 30.0),
        cell(0, 1, false, 0.2, 50.0),
        cell(1, 1, true, 0.8, 20.0),
        cell(0, 2, false, 0.0, 5.0),
        // case 2 of column 1 was never recorded (interrupted run)
    ];
    let tags = HashMap::from([("c1".to_string(), vec!["hard".to_string()])]);
    RunMatrix::from_cells(run_row(), cells, &tags)
}

#[test]
fn cells_land_in_their_row_and_column() {
    let m = matrix();
    assert_eq!(m.columns, ["p0 @ m", "p1 @ m"]);
    assert_eq!(m.cases.len(), 3);
    assert_eq!(m.cell(1, 0).map(|c| c.score), Some(0.2));
    assert!(m.cell(2, 1).is_none());
    assert!(m.cell(0, 2).is_none(), "column out of range");
    assert_eq!(m.cases[1].tags, ["hard"]);
}

#[test]
fn column_stats_count_recorded_cells_only() {
    let m = matrix();
    let first = m.column_stats(0);
    assert_eq!((first.recorded, first.passed, first.cached), (3, 1, 0));
    assert!((first.mean_score - 0.4).abs() < 1e-12);
    let second = m.column_stats(1);
    assert_eq!((second.recorded, second.passed, second.cached), (2, 2, 2));
    assert_eq!(second.pass_rate(), Some(1.0));
    assert_eq!(ColumnStats::default().pass_rate(), None);
}

#[test]
fn filters_and_orders() {
    let m = matrix();
    assert_eq!(m.rows(&RowFilter::All, RowOrder::Case), [0, 1, 2]);
    assert_eq!(m.rows(&RowFilter::Failures, RowOrder::Case), [1, 2]);
    // Case 2 has one recorded cell: nothing to disagree with.
    assert_eq!(m.rows(&RowFilter::Disagreements, RowOrder::Case), [1]);
    assert_eq!(m.rows(&RowFilter::Tag("hard".into()), RowOrder::Case), [1]);
    assert_eq!(m.rows(&RowFilter::All, RowOrder::Score), [2, 1, 0]);
    assert_eq!(m.rows(&RowFilter::All, RowOrder::Latency), [1, 0, 2]);
    assert_eq!(m.tags(), ["hard"]);
}
