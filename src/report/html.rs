//! A self-contained HTML report: one file with inline CSS, JavaScript and SVG, and a
//! Content-Security-Policy that forbids every network request, so it opens offline and
//! can be mailed. The summary, judging, and the latency and speed histograms are rendered
//! here; the results matrix (paged, filterable) and the side-by-side view with word diffs
//! are drawn by the inline script from the run's data, embedded as JSON.

mod images;

use serde_json::json;

use crate::run::RunResult;

const CSS: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");
/// Nothing may be fetched: no network, no other files; only the page's own inline parts.
pub(super) const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

pub(super) fn render(result: &RunResult) -> Result<String, super::RenderError> {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>promptlab · {}</title>\n<style>{CSS}</style></head><body>\n",
        escape(&result.eval_set)
    ));
    out.push_str(&format!(
        "<h1>{}</h1><p class=\"meta\">{} cases × {} columns · started {} · {:.1} s{}</p>\n",
        escape(&result.eval_set),
        result.cases.len(),
        result.columns.len(),
        escape(&result.started_at),
        result.duration_s,
        if result.cancelled {
            " · cancelled"
        } else {
            ""
        }
    ));
    summary(result, &mut out);
    let judging = super::judging_text(result);
    if !judging.is_empty() {
        out.push_str("<h2>Judging</h2>");
        for line in judging.lines() {
            out.push_str(&format!("<p>{}</p>", escape(line)));
        }
    }
    ranking(result, &mut out);
    distributions(result, &mut out);

    out.push_str("<h2>Results</h2>\n<div class=\"controls\"><label>Show <select id=\"filter\"><option value=\"all\">all cases</option><option value=\"failures\">cases with a failure</option><option value=\"disagreements\">cases where columns disagree</option><option value=\"errors\">cases with an error</option></select></label><span id=\"shown\"></span><span class=\"pager\"><button id=\"prev\">◀ previous</button><button id=\"next\">next ▶</button></span></div>\n");
    out.push_str("<table id=\"matrix\"><thead><tr><th>case</th>");
    for column in &result.columns {
        out.push_str(&format!("<th>{}</th>", escape(&column.id)));
    }
    out.push_str("</tr></thead><tbody id=\"matrix-body\"></tbody></table>\n");
    out.push_str("<div id=\"detail\"><h2 id=\"detail-title\"></h2><div id=\"sides\" class=\"sides\"></div></div>\n");

    let data = serde_json::to_string(&data(result))?;
    // `</` would end the script element early; `\/` is the same string in JSON.
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"data\">{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        data.replace("</", "<\\/")
    ));
    Ok(out)
}

/// The run as the script reads it: per case, per column `[status, score, output, reasons]`.
fn data(result: &RunResult) -> serde_json::Value {
    let columns = result.columns.len();
    let mut cells = vec![vec![serde_json::Value::Null; columns]; result.cases.len()];
    for cell in &result.cells {
        let status = if cell.is_error() {
            "error"
        } else if cell.passed {
            "pass"
        } else {
            "fail"
        };
        if let Some(row) = cells.get_mut(cell.case)
            && let Some(slot) = row.get_mut(cell.column)
        {
            *slot = json!([
                status,
                cell.score,
                cell.output,
                cell.failure_reasons(),
                images::boxes_of(&json!(cell.output)),
            ]);
        }
    }
    json!({
        "columns": result.columns.iter().map(|c| json!({"id": c.id})).collect::<Vec<_>>(),
        "cases": result.cases.iter().map(|c| {
            let picture = images::case_picture(
                std::path::Path::new(&result.eval_set_path),
                &c.vars,
                c.expected.as_ref(),
            );
            json!({"id": c.id, "description": c.label(), "picture": picture})
        }).collect::<Vec<_>>(),
        "cells": cells,
    })
}

fn summary(result: &RunResult, out: &mut String) {
    out.push_str("<h2>Summary</h2><table id=\"summary\"><thead><tr><th>prompt @ model</th><th>pass rate [95% CI]</th><th>passed</th><th>errors</th><th>mean score</th><th>mean latency</th><th>time to first token</th><th>tokens/s</th></tr></thead><tbody>");
    for s in &result.summaries {
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{}</td></tr>",
            escape(&s.column),
            crate::score::stats::format_rate(s.passed, s.cases),
            s.passed,
            s.cases,
            s.errors,
            s.mean_score,
            s.mean_latency_ms,
            s.mean_ttft_ms,
            s.tokens_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "–".into())
        ));
    }
    out.push_str("</tbody></table>\n");
}

fn ranking(result: &RunResult, out: &mut String) {
    let Some(pairwise) = &result.pairwise else {
        return;
    };
    out.push_str(&format!(
        "<h2>Pairwise ranking</h2><p class=\"meta\">Judge {} · {} comparisons, each in both orders · {} order disagreements counted as ties · criterion: {}</p><table id=\"ranking\"><thead><tr><th>#</th><th>column</th><th>Bradley–Terry strength</th><th>95% interval</th><th>P(beats average)</th></tr></thead><tbody>",
        escape(&pairwise.judge),
        pairwise.outcomes.len(),
        pairwise.order_disagreements,
        escape(&pairwise.criterion)
    ));
    for (rank, r) in pairwise.ranking.iter().enumerate() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:+.2}</td><td class=\"num\">[{:+.2}, {:+.2}]</td><td class=\"num\">{:.0}%</td></tr>",
            rank + 1,
            escape(&r.column_id),
            r.strength,
            r.interval.0,
            r.interval.1,
            r.win_probability * 100.0
        ));
    }
    out.push_str("</tbody></table>\n");
}

/// Per column, histograms of cell latency and generation speed, each metric on one
/// shared axis across columns (inline SVG).
fn distributions(result: &RunResult, out: &mut String) {
    // Cached cells were not generated now: their timings are not this run's.
    let ran: Vec<&crate::run::CellResult> = result
        .cells
        .iter()
        .filter(|c| c.error.is_none() && !c.cached)
        .collect();
    histograms(result, &ran, "Latency", "ms", out, |c| {
        Some(c.latency_ms).filter(|v| *v > 0.0)
    });
    histograms(result, &ran, "Generation speed", "tokens/s", out, |c| {
        c.tokens_per_s.filter(|v| *v > 0.0)
    });
}

fn histograms(
    result: &RunResult,
    cells: &[&crate::run::CellResult],
    title: &str,
    unit: &str,
    out: &mut String,
    value: impl Fn(&crate::run::CellResult) -> Option<f64>,
) {
    let Some(max) = cells.iter().filter_map(|c| value(c)).reduce(f64::max) else {
        return;
    };
    const BINS: usize = 20;
    const WIDTH: f64 = 360.0;
    const HEIGHT: f64 = 80.0;
    out.push_str(&format!("<h2>{title}</h2><div class=\"sides\">"));
    for (index, column) in result.columns.iter().enumerate() {
        let mut bins = [0usize; BINS];
        for v in cells
            .iter()
            .filter(|c| c.column == index)
            .filter_map(|c| value(c))
        {
            let bin = ((v / max) * BINS as f64).floor() as usize;
            bins[bin.min(BINS - 1)] += 1;
        }
        let tallest = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
        let bar = WIDTH / BINS as f64;
        let mut svg = format!(
            "<svg class=\"histogram\" width=\"{WIDTH}\" height=\"{}\" role=\"img\" aria-label=\"{title} histogram\">",
            HEIGHT + 16.0
        );
        for (i, count) in bins.iter().enumerate() {
            let h = HEIGHT * *count as f64 / tallest;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#5b8fc9\"><title>{count} cells</title></rect>",
                i as f64 * bar,
                HEIGHT - h,
                bar - 1.0
            ));
        }
        let max_text = if max < 10.0 {
            format!("{max:.2} {unit}")
        } else {
            format!("{max:.0} {unit}")
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{y}\">0</text><text x=\"{WIDTH}\" y=\"{y}\" text-anchor=\"end\">{max_text}</text></svg>",
            y = HEIGHT + 13.0
        ));
        out.push_str(&format!(
            "<div class=\"side\"><h3>{}</h3>{svg}</div>",
            escape(&column.id)
        ));
    }
    out.push_str("</div>\n");
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
