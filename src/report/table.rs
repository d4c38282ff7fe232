//! The terminal view of a run: the cases × columns matrix, a summary per column, and
//! the failing cases with their reasons. Plain text so it works in CI logs; the caller
//! says how wide the terminal is and whether to colour verdicts ([`TableStyle`]).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};

use super::excerpt;
use crate::run::RunResult;

/// How terminal tables look. The default (no width, no colour) is what logs and pipes
/// get: each table as wide as its content, plain characters only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStyle {
    /// Columns to fit: long cells wrap rather than overflow.
    pub width: Option<u16>,
    /// Verdicts in green, red and yellow (ANSI colours).
    pub color: bool,
}

impl TableStyle {
    /// An empty table in this style.
    pub fn table(&self) -> Table {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        match self.width {
            Some(width) => {
                table
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(width);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        table
    }

    /// Keeps every column but `wrapping` as wide as its content: figures and verdicts
    /// never break across lines, names and texts wrap when the table is too wide.
    pub fn wrap_only(&self, table: &mut Table, wrapping: &[usize]) {
        // Narrower than this a name is unreadable; the table overflows instead.
        self.wrap_only_at(table, wrapping, 16);
    }

    /// [`Self::wrap_only`], with wrapped columns kept at least `narrowest` wide.
    pub fn wrap_only_at(&self, table: &mut Table, wrapping: &[usize], narrowest: u16) {
        if self.width.is_none() {
            return;
        }
        for (index, column) in table.column_iter_mut().enumerate() {
            column.set_constraint(if wrapping.contains(&index) {
                ColumnConstraint::LowerBoundary(Width::Fixed(narrowest))
            } else {
                ColumnConstraint::ContentWidth
            });
        }
    }

    /// `text` in the colour of a verdict: passed, failed, or could not be scored.
    pub fn verdict(&self, text: impl Into<String>, verdict: Verdict) -> Cell {
        let text = text.into();
        if !self.color {
            return Cell::new(text);
        }
        // Plain SGR codes, written only when colour was chosen (comfy-table measures
        // cells without them); its own styling would second-guess NO_COLOR.
        let code = match verdict {
            Verdict::Passed => 32,
            Verdict::Failed => 31,
            Verdict::Partly | Verdict::Error => 33,
        };
        Cell::new(format!("\u{1b}[{code}m{text}\u{1b}[0m"))
    }
}

/// What a table cell says about passing, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// Some of several passed.
    Partly,
    Error,
}

impl Verdict {
    /// `passed` of `total`.
    pub fn of_count(passed: usize, total: usize) -> Verdict {
        match passed {
            _ if total == 0 => Verdict::Error,
            0 => Verdict::Failed,
            p if p == total => Verdict::Passed,
            _ => Verdict::Partly,
        }
    }
}

/// The cases × columns matrix (✓/✗ and score), then the per-column summary.
pub fn summary_table(result: &RunResult, max_matrix_rows: usize, style: &TableStyle) -> String {
    let mut out = String::new();
    if max_matrix_rows > 0 {
        out.push_str(&matrix(result, max_matrix_rows, style));
        out.push('\n');
    }
    out.push_str(&summary(result, style));
    out.push_str(&named_metrics(result, style));
    out
}

/// Named metrics per column (sum over the cases, with the assertions counted) and derived
/// ones; empty when no assertion names a metric.
fn named_metrics(result: &RunResult, style: &TableStyle) -> String {
    let names = result.named_metric_names();
    let errors: Vec<&String> = result
        .summaries
        .iter()
        .flat_map(|s| &s.metric_errors)
        .collect();
    if names.is_empty() && errors.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    if !names.is_empty() {
        let mut table = style.table();
        let mut header = vec!["metric".to_string()];
        header.extend((0..result.summaries.len()).map(short_name));
        table.set_header(header);
        for name in names {
            let mut row = vec![Cell::new(name)];
            for s in &result.summaries {
                row.push(Cell::new(s.named_metric_text(name)));
            }
            table.add_row(row);
        }
        out.push_str("Named metrics (sums over the cases, assertions counted; derived metrics as computed):\n");
        out.push_str(&format!("{table}\n"));
    }
    for error in errors {
        out.push_str(&format!("warning: {error}\n"));
    }
    out
}

fn short_name(index: usize) -> String {
    format!("C{}", index + 1)
}

/// The matrix's column headers: each column's `prompt @ model` when they all fit beside
/// the case column in `width`, else C1, C2, … (named in the summary below).
fn column_headers(result: &RunResult, width: Option<u16>) -> Vec<String> {
    let full: Vec<String> = result.columns.iter().map(|c| c.id.clone()).collect();
    // A cell is "✓ 1.00"; each column adds its borders and padding.
    let needed: usize = 36
        + full
            .iter()
            .map(|id| id.chars().count().max(6) + 3)
            .sum::<usize>();
    let fits = width.is_some_and(|w| needed <= usize::from(w));
    if fits {
        full
    } else {
        (0..result.columns.len()).map(short_name).collect()
    }
}

fn matrix(result: &RunResult, max_rows: usize, style: &TableStyle) -> String {
    let mut table = style.table();
    let mut header = vec!["case".to_string()];
    header.extend(column_headers(result, style.width));
    table.set_header(header);
    for (case_index, case) in result.cases.iter().enumerate().take(max_rows) {
        let label = case.label();
        let mut row = vec![Cell::new(format!("{} {}", case.id, excerpt(&label, 28)))];
        for column in 0..result.columns.len() {
            row.push(match result.cell(column, case_index) {
                Some(cell) if cell.is_error() => style.verdict("ERR", Verdict::Error),
                Some(cell) if cell.passed => {
                    style.verdict(format!("✓ {:.2}", cell.score), Verdict::Passed)
                }
                Some(cell) => style.verdict(format!("✗ {:.2}", cell.score), Verdict::Failed),
                None => Cell::new("–"),
            });
        }
        table.add_row(row);
    }
    style.wrap_only(&mut table, &[0]);
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

fn summary(result: &RunResult, style: &TableStyle) -> String {
    let has_classification = result.classification.iter().any(Option::is_some);
    let mut table = style.table();
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
        let verdict = Verdict::of_count(s.passed, s.cases);
        let mut row = vec![
            Cell::new(short_name(index)),
            Cell::new(&s.column),
            style.verdict(crate::score::stats::format_rate(s.passed, s.cases), verdict),
            style.verdict(format!("{}/{}", s.passed, s.cases), verdict),
            Cell::new(format!("{:.3}", s.mean_score)),
            Cell::new(format!("{:.0} ms", s.mean_latency_ms)),
            Cell::new(format!("{:.0} ms", s.mean_ttft_ms)),
            Cell::new(
                s.tokens_per_s
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "–".into()),
            ),
        ];
        if has_classification {
            match result.classification.get(index).and_then(Option::as_ref) {
                Some(report) => {
                    row.push(Cell::new(format!("{:.3}", report.accuracy)));
                    row.push(Cell::new(format!("{:.3}", report.macro_avg.f1)));
                }
                None => row.extend([Cell::new("–"), Cell::new("–")]),
            }
        }
        if has_detection {
            match result.detection.get(index).and_then(Option::as_ref) {
                Some(report) => {
                    row.push(Cell::new(format!("{:.3}", report.ap_50)));
                    row.push(Cell::new(format!("{:.3}", report.map_50_95)));
                }
                None => row.extend([Cell::new("–"), Cell::new("–")]),
            }
        }
        table.add_row(row);
    }
    for column in 2..=7 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    style.wrap_only(&mut table, &[1]);
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
