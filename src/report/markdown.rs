//! Markdown summary, suitable for a pull-request comment or a notebook.

use super::excerpt;
use crate::run::RunResult;

pub(super) fn render(result: &RunResult) -> String {
    let mut out = format!("# promptlab: {}\n\n", result.eval_set);
    out.push_str(&format!(
        "{} cases × {} columns, run {} ({:.1} s){}\n\n",
        result.cases.len(),
        result.columns.len(),
        result.started_at,
        result.duration_s,
        if result.cancelled {
            ", **cancelled**"
        } else {
            ""
        }
    ));
    out.push_str(
        "| prompt @ model | pass rate [95% CI] | passed | mean score | mean latency | tok/s |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for s in &result.summaries {
        out.push_str(&format!(
            "| {} | {} | {}/{} | {:.3} | {:.0} ms | {} |\n",
            escape(&s.column),
            crate::score::stats::format_rate(s.passed, s.cases),
            s.passed,
            s.cases,
            s.mean_score,
            s.mean_latency_ms,
            s.tokens_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "–".into())
        ));
    }
    let named = result.named_metric_names();
    if !named.is_empty() {
        out.push_str("\n## Named metrics\n\n| prompt @ model |");
        for name in &named {
            out.push_str(&format!(" {} |", escape(name)));
        }
        out.push_str(&format!("\n|---|{}\n", "---:|".repeat(named.len())));
        for s in &result.summaries {
            out.push_str(&format!("| {} |", escape(&s.column)));
            for name in &named {
                out.push_str(&format!(" {} |", s.named_metric_text(name)));
            }
            out.push('\n');
        }
    }
    for (index, report) in result.detection.iter().enumerate() {
        if let Some(report) = report {
            out.push_str(&format!(
                "\n## Detection: {}\n\n{}\n",
                escape(&result.columns[index].id),
                escape(&report.to_text())
            ));
        }
    }
    let judging = super::judging_text(result);
    if !judging.is_empty() {
        out.push_str(&format!(
            "\n## Judging\n\n{}\n",
            escape(&judging).replace('\n', "\n\n").trim_end()
        ));
        out.push('\n');
    }
    if let Some(pairwise) = &result.pairwise {
        out.push_str(&format!(
            "\n## Pairwise ranking (judge: {}, both orders, {} comparisons)\n\n| rank | column | Bradley–Terry strength | 95% interval | P(beats average) |\n|---|---|---|---|---|\n",
            escape(&pairwise.judge),
            pairwise.outcomes.len()
        ));
        for (rank, r) in pairwise.ranking.iter().enumerate() {
            out.push_str(&format!(
                "| {} | {} | {:+.2} | [{:+.2}, {:+.2}] | {:.0}% |\n",
                rank + 1,
                escape(&r.column_id),
                r.strength,
                r.interval.0,
                r.interval.1,
                r.win_probability * 100.0
            ));
        }
        out.push_str("\n| A | B | A wins | ties | B wins |\n|---|---|---|---|---|\n");
        for t in &pairwise.tallies {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                escape(&result.columns[t.a].id),
                escape(&result.columns[t.b].id),
                t.wins_a,
                t.ties,
                t.wins_b
            ));
        }
    }
    for (index, report) in result.classification.iter().enumerate() {
        if let Some(report) = report {
            out.push_str(&format!(
                "\n## Classification: {}\n\n```\n{}```\n",
                escape(&result.columns[index].id),
                report.to_text()
            ));
            out.push_str("\nConfusion matrix (rows: expected, columns: predicted)\n\n");
            out.push_str(&format!(
                "| | {} |\n",
                report
                    .labels
                    .iter()
                    .map(|l| escape(l))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
            out.push_str(&format!("|---|{}\n", "---:|".repeat(report.labels.len())));
            for (label, row) in report.labels.iter().zip(&report.confusion) {
                out.push_str(&format!(
                    "| **{}** | {} |\n",
                    escape(label),
                    row.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        }
    }
    let failed: Vec<_> = result.failed_cells().collect();
    if !failed.is_empty() {
        out.push_str(&format!("\n## Failures ({})\n\n", failed.len()));
        out.push_str("| column | case | output | reasons |\n|---|---|---|---|\n");
        for cell in failed {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                escape(&result.columns[cell.column].id),
                escape(&result.cases[cell.case].id),
                escape(&excerpt(&cell.output, 80)),
                escape(&cell.failure_reasons().join("; "))
            ));
        }
    }
    out
}

/// Keeps cell text from breaking the table.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A pull-request section: run `b` against baseline `a`, per column (pass rates, exact
/// McNemar test in words) and the first `max` regressions and fixes with outputs.
pub fn baseline_markdown(
    a: i64,
    b: i64,
    comparison: &crate::compare::Comparison,
    max: usize,
) -> String {
    let mut out = format!(
        "\n## Against run {a}\n\n| prompt @ model | shared cases | run {a} | run {b} | change |\n|---|---:|---:|---:|---|\n"
    );
    for c in &comparison.columns {
        out.push_str(&format!(
            "| {} | {} | {:.1}% | {:.1}% | {} |\n",
            escape(&c.column),
            c.shared,
            c.pass_rate_a * 100.0,
            c.pass_rate_b * 100.0,
            escape(&c.verdict())
        ));
    }
    for (title, changes) in [
        ("Regressions", &comparison.regressions),
        ("Fixes", &comparison.fixes),
    ] {
        if changes.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n### {title} ({})\n\n| case | prompt @ model | run {a} | run {b} |\n|---|---|---|---|\n",
            changes.len()
        ));
        for change in changes.iter().take(max) {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                escape(&change.case),
                escape(&change.column),
                escape(&excerpt(&change.output_a, 80)),
                escape(&excerpt(&change.output_b, 80))
            ));
        }
        if changes.len() > max {
            out.push_str(&format!("\n… and {} more.\n", changes.len() - max));
        }
    }
    out
}
