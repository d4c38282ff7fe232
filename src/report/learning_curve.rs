//! Training runs compared as learning curves: for each data set, test accuracy against
//! the number of labelled images, one line per starting point (from scratch, a
//! pretrained backbone's features, fine-tuned, another run's weights), each point with
//! its 95% Wilson interval; then the same as a table. `benches/transfer.sh` writes one.

use std::collections::BTreeMap;

use super::html::{CSP, escape};
use crate::score::stats::wilson_interval;
use crate::vision::train::ModelCard;

const CSS: &str = include_str!("html/report.css");
const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const PAD: f64 = 48.0;
const COLOURS: [&str; 6] = [
    "#5b8fc9", "#d9822b", "#3e9e5a", "#b0466b", "#7a5bc9", "#8a8a3a",
];

/// One measured point: a run's labelled images and test accuracy.
struct Point {
    images: usize,
    accuracy: f64,
    low: f64,
    high: f64,
    seconds: f64,
}

/// The page for `cards` (runs without a test report or a count of labelled images are
/// left out, and said to be).
pub fn learning_curve_html(title: &str, cards: &[ModelCard]) -> String {
    // data set → start → points
    let mut curves: BTreeMap<String, BTreeMap<String, Vec<Point>>> = BTreeMap::new();
    let mut skipped = 0;
    for card in cards {
        let Some(test) = card.test.as_ref().filter(|_| card.labelled_images > 0) else {
            skipped += 1;
            continue;
        };
        let correct = (test.accuracy * test.samples as f64).round() as usize;
        let (low, high) = wilson_interval(correct, test.samples).unwrap_or((0.0, 1.0));
        curves
            .entry(card.config.dataset.name().to_string())
            .or_default()
            .entry(card.start())
            .or_default()
            .push(Point {
                images: card.labelled_images,
                accuracy: test.accuracy,
                low,
                high,
                seconds: card.train_seconds,
            });
    }
    let left_out = if skipped > 0 {
        format!(" · {skipped} runs without a test report left out")
    } else {
        String::new()
    };
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n<title>promptlab · {t}</title>\n<style>{CSS}</style></head><body>\n<h1>{t}</h1>\n<p class=\"meta\">test accuracy against labelled training images, one line per starting point; bars are 95% Wilson intervals{left_out}</p>\n",
        t = escape(title),
    );
    for (dataset, starts) in &mut curves {
        for points in starts.values_mut() {
            points.sort_by_key(|p| p.images);
        }
        out.push_str(&format!("<h2>{}</h2>\n", escape(dataset)));
        out.push_str(&plot(dataset, starts));
        out.push_str("<table class=\"curve\"><thead><tr><th>labelled images</th><th>start</th><th>test accuracy [95% CI]</th><th>seconds</th></tr></thead><tbody>");
        let mut rows: Vec<(&String, &Point)> = starts
            .iter()
            .flat_map(|(start, points)| points.iter().map(move |p| (start, p)))
            .collect();
        rows.sort_by_key(|(_, p)| p.images);
        for (start, point) in rows {
            out.push_str(&format!(
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{:.2}% [{:.2}–{:.2}]</td><td class=\"num\">{:.1}</td></tr>",
                point.images,
                escape(start),
                point.accuracy * 100.0,
                point.low * 100.0,
                point.high * 100.0,
                point.seconds
            ));
        }
        out.push_str("</tbody></table>\n");
    }
    if curves.is_empty() {
        out.push_str("<p>No finished training run with a test report.</p>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// One data set's curves: labelled images on a log scale, accuracy on a linear one.
fn plot(dataset: &str, starts: &BTreeMap<String, Vec<Point>>) -> String {
    let points = || starts.values().flatten();
    let (min_x, max_x) = points().fold((f64::INFINITY, 0.0f64), |(a, b), p| {
        let x = (p.images.max(1) as f64).log10();
        (a.min(x), b.max(x))
    });
    let (min_y, max_y) = points().fold((1.0f64, 0.0f64), |(a, b), p| (a.min(p.low), b.max(p.high)));
    let (min_y, max_y) = ((min_y - 0.02).max(0.0), (max_y + 0.02).min(1.0));
    let span_x = if max_x > min_x { max_x - min_x } else { 1.0 };
    let px = |images: usize| {
        PAD + ((images.max(1) as f64).log10() - min_x) / span_x * (WIDTH - 2.0 * PAD)
    };
    let py = |value: f64| {
        HEIGHT - PAD + 10.0 - (value - min_y) / (max_y - min_y).max(1e-9) * (HEIGHT - PAD - 20.0)
    };
    let legend_height = 18.0 * starts.len() as f64;
    let mut out = format!(
        "<svg class=\"learning-curve\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{label}\" font-size=\"12\" font-family=\"sans-serif\">",
        w = WIDTH + 360.0,
        h = HEIGHT.max(legend_height + 20.0),
        label = escape(&format!("{dataset}: accuracy against labelled images")),
    );
    // Axes, with a tick at every size measured.
    let bottom = py(min_y);
    out.push_str(&format!(
        "<line x1=\"{PAD}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#777\"/><line x1=\"{PAD}\" y1=\"{}\" x2=\"{PAD}\" y2=\"{bottom}\" stroke=\"#777\"/>",
        WIDTH - PAD,
        py(max_y)
    ));
    let mut sizes: Vec<usize> = points().map(|p| p.images).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{size}</text>",
            px(size),
            bottom + 16.0
        ));
    }
    for value in [min_y, (min_y + max_y) / 2.0, max_y] {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.1}%</text>",
            PAD - 4.0,
            py(value) + 4.0,
            value * 100.0
        ));
    }
    for (index, (start, points)) in starts.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let line: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.images), py(p.accuracy)))
            .collect();
        out.push_str(&format!(
            "<polyline class=\"curve\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            line.join(" ")
        ));
        for p in points {
            let x = px(p.images);
            out.push_str(&format!(
                "<g class=\"point\"><title>{}: {} images, {:.2}% [{:.2}–{:.2}]</title><line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/><circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/></g>",
                escape(start),
                p.images,
                p.accuracy * 100.0,
                p.low * 100.0,
                p.high * 100.0,
                py(p.low),
                py(p.high),
                py(p.accuracy)
            ));
        }
        let y = 20.0 + 18.0 * index as f64;
        out.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            WIDTH + 4.0,
            y - 4.0,
            WIDTH + 22.0,
            y,
            escape(start)
        ));
    }
    out.push_str("</svg>\n");
    out
}
