//! The terminal view of a run: the cases × columns matrix, a summary per column, and
//! the failing cases with their reasons. Plain text so it works in CI logs.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use super::excerpt;
use crate::run::RunResult;

/// The cases × columns matrix (✓/✗ and score), then the per-column summary.
pub fn summary_table(result: &RunResult, max_matrix_rows: usize) -> String {
    let mut out = String::new();
    if max_matrix_rows > 0 {
        out.push_str(&matrix(result, max_matrix_rows));
        out.push('\n');
    }
    out.push_str(&summary(result));
    out
}

fn short_name(index: usize) -> String {
    format!("C{}", index + 1)
}

fn matrix(result: &RunResult, max_rows: usize) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let mut header = vec!["case".to_string()];
    header.extend((0..result.columns.len()).map(short_name));
    table.set_header(header);
    for (case_index, case) in result.cases.iter().enumerate().take(max_rows) {
        let label = case.label();
        let mut row = vec![format!("{} {}", case.id, excerpt(&label, 28))];
        for column in 0..result.columns.len() {
            row.push(match result.cell(column, case_index) {
                Some(cell) if cell.is_error() => "ERR".to_string(),
                Some(cell) if cell.passed => format!("✓ {:.2}", cell.score),
                Some(cell) => format!("✗ {:.2}", cell.score),
                None => "–".to_string(),
            });
        }
        table.add_row(row);
    }
    let mut out = table.to_string();
    out.push('\n');
    if result.cases.len() > max_rows {
        out.push_str(&format!(
            "… {} more cases (all of them are in the -o reports)\n",
            result.cases.len() - max_rows
        ));
    }
    out
}

fn summary(result: &RunResult) -> String {
    let has_classification = result.classification.iter().any(Option::is_some);
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let mut header = vec![
        "",
        "prompt @ model",
        "pass rate [95% CI]",
        "passed",
        "score",
        "latency",
        "TTFT",
        "tok/s",
    ];
    if has_classification {
        header.extend(["accuracy", "macro F1"]);
    }
    let has_detection = result.detection.iter().any(Option::is_some);
    if has_detection {
        header.extend(["AP@0.5", "mAP@.5:.95"]);
    }
    table.set_header(header);
    for (index, s) in result.summaries.iter().enumerate() {
        let mut row = vec![
            short_name(index),
            s.column.clone(),
            crate::score::stats::format_rate(s.passed, s.cases),
            format!("{}/{}", s.passed, s.cases),
            format!("{:.3}", s.mean_score),
            format!("{:.0} ms", s.mean_latency_ms),
            format!("{:.0} ms", s.mean_ttft_ms),
            s.tokens_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "–".into()),
        ];
        if has_classification {
            match result.classification.get(index).and_then(Option::as_ref) {
                Some(report) => {
                    row.push(format!("{:.3}", report.accuracy));
                    row.push(format!("{:.3}", report.macro_avg.f1));
                }
                None => row.extend(["–".to_string(), "–".to_string()]),
            }
        }
        if has_detection {
            match result.detection.get(index).and_then(Option::as_ref) {
                Some(report) => {
                    row.push(format!("{:.3}", report.ap_50));
                    row.push(format!("{:.3}", report.map_50_95));
                }
                None => row.extend(["–".to_string(), "–".to_string()]),
            }
        }
        table.add_row(row);
    }
    for column in 2..=7 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    out.push('\n');
    out
}

/// What judging cost, and how the verdicts agree with human labels; empty without judges.
pub fn judging_text(result: &RunResult) -> String {
    let mut out = String::new();
    let time = &result.judge_time;
    if time.assertions > 0 {
        out.push_str(&format!(
            "Judged {} assertion{} on {} cell{} with {} in {:.1} s ({:.2} s per cell)\n",
            time.assertions,
            if time.assertions == 1 { "" } else { "s" },
            time.cells,
            if time.cells == 1 { "" } else { "s" },
            time.judges.join(", "),
            time.seconds,
            time.seconds / time.cells.max(1) as f64
        ));
    }
    for (index, agreement) in result.judge_agreement.iter().enumerate() {
        let Some(a) = agreement else { continue };
        out.push_str(&format!(
            "Agreement with human labels · {}: {}/{} ({}), Cohen's κ = {}; {} human pass{} judged fail, {} human fail{} judged pass\n",
            result.columns[index].id,
            a.agreed,
            a.cases,
            crate::score::stats::format_rate(a.agreed, a.cases),
            a.kappa
                .map(|k| format!("{k:.2} ({})", crate::score::stats::kappa_strength(k)))
                .unwrap_or_else(|| "undefined (one label only)".into()),
            a.false_fails,
            if a.false_fails == 1 { "" } else { "es" },
            a.false_passes,
            if a.false_passes == 1 { "" } else { "s" },
        ));
    }
    out
}

/// Failing cells with one line per reason, at most `max` cells.
pub fn failures_text(result: &RunResult, max: usize) -> String {
    let failed: Vec<_> = result.failed_cells().collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut out = format!("Failures ({}):\n", failed.len());
    for cell in failed.iter().take(max) {
        let column = &result.columns[cell.column];
        let case = &result.cases[cell.case];
        out.push_str(&format!(
            "  {} {} · case {}{}\n",
            if cell.is_error() { "E" } else { "✗" },
            column.id,
            case.id,
            match case.label() {
                label if label.is_empty() => String::new(),
                label => format!(" ({})", excerpt(&label, 50)),
            }
        ));
        out.push_str(&format!("      output: {}\n", excerpt(&cell.output, 100)));
        for reason in cell.failure_reasons() {
            out.push_str(&format!("      - {reason}\n"));
        }
    }
    if failed.len() > max {
        out.push_str(&format!(
            "  … {} more failures (write them all with -o failures.md or .json)\n",
            failed.len() - max
        ));
    }
    out
}
