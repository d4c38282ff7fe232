//! Sweep reports: the points of a parameter sweep as JSON, Markdown, or a self-contained
//! HTML page with a brushable parallel-coordinates plot and a sortable table.

use crate::sweep::{SweepReport, value_text};

const CSS: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/sweep.js");

pub(super) fn markdown(report: &SweepReport) -> String {
    let mut out = format!(
        "# Sweep{} · {}\n\n| {} | prompt | model | pass rate [95% CI] | mean score |\n|{}---|---|---|---|\n",
        report
            .sweep_id
            .map(|id| format!(" {id}"))
            .unwrap_or_default(),
        report.eval_set,
        report.params.join(" | "),
        "---|".repeat(report.params.len())
    );
    let mut points: Vec<_> = report.points.iter().collect();
    points.sort_by(|a, b| b.pass_rate.total_cmp(&a.pass_rate));
    for p in points {
        let values: Vec<String> = report
            .params
            .iter()
            .map(|k| p.values.get(k).map(value_text).unwrap_or_default())
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} |\n",
            values.join(" | "),
            p.prompt,
            p.model,
            crate::score::stats::format_rate(p.passed, p.cases),
            p.mean_score
        ));
    }
    out
}

pub(super) fn html(report: &SweepReport) -> Result<String, super::RenderError> {
    let title = format!(
        "Sweep{} · {}",
        report
            .sweep_id
            .map(|id| format!(" {id}"))
            .unwrap_or_default(),
        report.eval_set
    );
    // Names a best point only when the data can tell it from the others.
    let best = report
        .best_text()
        .map(|text| {
            let mut chars = text.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let data = serde_json::to_string(report)?;
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n<title>promptlab · {t}</title>\n<style>{CSS}\npolyline.dim {{ stroke-opacity: .08; }}</style></head><body>\n<h1>{t}</h1><p class=\"meta\">{n} points over {p} swept parameters · one line per point, coloured from the lowest {metric} (red) to the highest (green) · drag along an axis to filter, click it to clear · click a column header to sort</p>\n<p id=\"best\"><strong>{best}</strong></p>\n<div id=\"plot\"></div><p id=\"kept\" class=\"meta\"></p>\n<table id=\"points\"><thead><tr id=\"points-head\"></tr></thead><tbody id=\"points-body\"></tbody></table>\n<script type=\"application/json\" id=\"data\">{data}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        csp = super::html::CSP,
        t = super::html::escape(&title),
        n = report.points.len(),
        p = report.params.len(),
        best = super::html::escape(&best),
        metric = super::html::escape(&report.metric),
        data = data.replace("</", "<\\/")
    ))
}
