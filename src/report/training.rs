//! A digit-CNN training run as a self-contained HTML page: hyperparameters, the network
//! drawn block by block (output shapes, parameter counts, frozen blocks, skip
//! connections) and its layers, training and validation curves (loss and accuracy per
//! epoch, inline SVG) and the test confusion matrix as a heat map.

use super::html::{CSP, escape};
use crate::vision::train::ModelCard;

const CSS: &str = include_str!("html/report.css");
const CHART_W: f64 = 440.0;
const CHART_H: f64 = 220.0;
const PAD: f64 = 36.0;

/// `title` names the run (e.g. "Training run 3 · mnist").
pub fn training_html(title: &str, card: &ModelCard) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n<title>promptlab · {t}</title>\n<style>{CSS}\n.heat td {{ width: 34px; text-align: center; font-variant-numeric: tabular-nums; }}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    let test = card
        .test
        .as_ref()
        .map(|t| format!(" · test accuracy {:.2}%", t.accuracy * 100.0))
        .unwrap_or_default();
    out.push_str(&format!(
        "<p class=\"meta\">{} parameters · {} epochs (best: {}{}) · {:.1} s of training{test}</p>\n",
        card.parameters,
        card.epochs.len(),
        card.best_epoch,
        if card.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        card.train_seconds
    ));

    out.push_str("<h2>Hyperparameters</h2><table id=\"hyperparameters\"><tbody>");
    if let Ok(serde_json::Value::Object(config)) = serde_json::to_value(&card.config) {
        for (key, value) in config {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(&key),
                escape(&text)
            ));
        }
    }
    out.push_str("</tbody></table>\n");
    out.push_str(&network_diagram(card));
    out.push_str("<h2>Training curves</h2><div class=\"sides\">");
    let epochs: Vec<f64> = card.epochs.iter().map(|e| e.epoch as f64).collect();
    out.push_str(&chart(
        "loss",
        &epochs,
        &[
            (
                "train",
                "#5b8fc9",
                card.epochs.iter().map(|e| e.train_loss).collect(),
            ),
            (
                "validation",
                "#d9822b",
                card.epochs.iter().map(|e| e.validation_loss).collect(),
            ),
        ],
    ));
    out.push_str(&chart(
        "accuracy",
        &epochs,
        &[
            (
                "train",
                "#5b8fc9",
                card.epochs.iter().map(|e| e.train_accuracy).collect(),
            ),
            (
                "validation",
                "#d9822b",
                card.epochs.iter().map(|e| e.validation_accuracy).collect(),
            ),
        ],
    ));
    out.push_str("</div>\n");

    if let Some(test) = &card.test {
        out.push_str("<h2>Test confusion matrix</h2><p class=\"meta\">rows: true digit, columns: predicted</p><table class=\"heat\" id=\"confusion\"><thead><tr><th></th>");
        for label in &test.labels {
            out.push_str(&format!("<th>{}</th>", escape(label)));
        }
        out.push_str("</tr></thead><tbody>");
        let max = test
            .confusion
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        for (row, label) in test.confusion.iter().zip(&test.labels) {
            out.push_str(&format!("<tr><th>{}</th>", escape(label)));
            for &count in row {
                // Log scale, so the few errors off the diagonal stay visible.
                let shade = ((count as f64).ln_1p() / max.ln_1p() * 100.0).round();
                out.push_str(&format!(
                    "<td style=\"background: hsl(210, 70%, {}%)\">{count}</td>",
                    97.0 - shade * 0.55
                ));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The network as a diagram of its blocks, input at the top: each block's output shape,
/// its parameter count with a bar for its share of the largest block's, frozen blocks
/// greyed, skip connections drawn beside the blocks they jump; then the layer table.
fn network_diagram(card: &ModelCard) -> String {
    const ROW: f64 = 30.0;
    const GAP: f64 = 10.0;
    const WIDTH: f64 = 640.0;
    const BOX: f64 = 560.0;
    let blocks = card.blocks();
    let most = blocks.iter().map(|b| b.params).max().unwrap_or(1).max(1) as f64;
    let frozen: usize = blocks
        .iter()
        .filter(|b| card.frozen(b))
        .map(|b| b.params)
        .sum();
    let input: Vec<String> = card.input.iter().map(usize::to_string).collect();
    let mut out = format!(
        "<h2>Network</h2><p class=\"meta\">{} blocks · {} parameters, {} frozen (grey: kept as loaded) · input {}{}</p>\n",
        blocks.len(),
        card.parameters,
        frozen,
        input.join("×"),
        card.adapt
            .as_ref()
            .map(|a| format!(", resized to 3×{s}×{s}", s = a.size))
            .unwrap_or_default()
    );
    let height = blocks.len() as f64 * (ROW + GAP) + GAP;
    out.push_str(&format!(
        "<svg id=\"network\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"the network's blocks\" font-size=\"12\" font-family=\"sans-serif\">"
    ));
    for (i, block) in blocks.iter().enumerate() {
        let y = GAP + i as f64 * (ROW + GAP);
        let (fill, stroke) = if card.frozen(block) {
            ("#e6e6e6", "#9a9a9a")
        } else {
            ("#dbe8f6", "#5b8fc9")
        };
        let shape: Vec<String> = block.output.iter().map(usize::to_string).collect();
        let bar = (block.params as f64 / most) * 120.0;
        out.push_str(&format!(
            "<g class=\"block\"><title>{name}: layers {first}–{last}</title><rect x=\"10\" y=\"{y}\" width=\"{BOX}\" height=\"{ROW}\" rx=\"4\" fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"18\" y=\"{ty}\">{name}</text><text x=\"330\" y=\"{ty}\">{shape}</text><rect x=\"420\" y=\"{by}\" width=\"{bar:.1}\" height=\"8\" fill=\"{stroke}\"/><text x=\"{px}\" y=\"{ty}\" text-anchor=\"end\">{params}</text></g>",
            name = escape(&block.name),
            first = block.layers.start + 1,
            last = block.layers.end,
            ty = y + ROW / 2.0 + 4.0,
            by = y + ROW - 10.0,
            shape = shape.join("×"),
            px = 10.0 + BOX - 8.0,
            params = block.params,
        ));
        if i + 1 < blocks.len() {
            out.push_str(&format!(
                "<line x1=\"40\" y1=\"{}\" x2=\"40\" y2=\"{}\" stroke=\"#777\"/>",
                y + ROW,
                y + ROW + GAP
            ));
        }
        if block.name.ends_with("+ skip") {
            out.push_str(&format!(
                "<path class=\"skip\" d=\"M {x0} {top} C {x1} {top}, {x1} {bottom}, {x0} {bottom}\" fill=\"none\" stroke=\"#d9822b\" stroke-width=\"1.5\"/>",
                x0 = 10.0 + BOX,
                x1 = 10.0 + BOX + 40.0,
                top = y - GAP / 2.0,
                bottom = y + ROW,
            ));
        }
    }
    out.push_str("</svg>\n");
    out.push_str("<h2>Layers</h2><table id=\"layers\"><thead><tr><th>layer</th><th>output</th><th>parameters</th></tr></thead><tbody>");
    for layer in &card.layers {
        let shape: Vec<String> = layer.output.iter().map(usize::to_string).collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&layer.name),
            shape.join("×"),
            layer.params
        ));
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A line chart of several series over the epochs.
fn chart(title: &str, x: &[f64], series: &[(&str, &str, Vec<f64>)]) -> String {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    let x_max = x.iter().copied().fold(1.0, f64::max);
    let x_min = x.iter().copied().fold(x_max, f64::min);
    let px = |v: f64| {
        PAD + if x_max > x_min {
            (v - x_min) / (x_max - x_min) * (CHART_W - 2.0 * PAD)
        } else {
            (CHART_W - 2.0 * PAD) / 2.0
        }
    };
    let py = |v: f64| CHART_H - PAD - (v - lo) / (hi - lo) * (CHART_H - 2.0 * PAD);
    let mut svg = format!(
        "<div class=\"side\"><h3>{title}</h3><svg class=\"curve\" width=\"{CHART_W}\" height=\"{CHART_H}\" role=\"img\" aria-label=\"{title} per epoch\">"
    );
    svg.push_str(&format!(
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>",
        b = CHART_H - PAD,
        r = CHART_W - PAD
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{hi:.3}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{lo:.3}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
        PAD - 4.0,
        PAD + 4.0,
        PAD - 4.0,
        CHART_H - PAD,
        CHART_W / 2.0,
        CHART_H - 8.0
    ));
    for (i, (name, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = x
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(e, v)| format!("{:.1},{:.1}", px(*e), py(*v)))
            .collect();
        svg.push_str(&format!(
            "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"><title>{name}</title></polyline>",
            points.join(" ")
        ));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" style=\"fill: {colour}\">{name}</text>",
            CHART_W - PAD - 70.0,
            PAD + 14.0 * i as f64
        ));
    }
    svg.push_str("</svg></div>");
    svg
}
