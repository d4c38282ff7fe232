//! `promptlab vision detect` and `vision classify`: objects in photos with a YOLO ONNX
//! model, and zero-shot labels with CLIP.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::DynamicImage;

use crate::cli::Outcome;

/// A PNG or JPEG, or an error naming the file.
fn open_image(path: &Path) -> Result<DynamicImage> {
    Ok(promptlab::vision::image_input::open_image(path)?)
}

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The photo (PNG or JPEG).
    image: PathBuf,
    /// An Ultralytics ONNX export (YOLOv8/YOLO11 detection head).
    #[arg(long)]
    model: PathBuf,
    /// Keep only these classes (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// At most this many objects per class (the most confident).
    #[arg(long)]
    max_per_class: Option<usize>,
    /// Minimum confidence, 0–1.
    #[arg(long, default_value_t = 0.25)]
    min_conf: f32,
    /// Boxes of one class overlapping more than this IoU are one object.
    #[arg(long, default_value_t = 0.45)]
    iou: f32,
    /// Class names: one per line, or a YAML file with `names:` (default: the model's metadata).
    #[arg(long)]
    names: Option<PathBuf>,
    /// Report classes under other names, e.g. `Normal=person,Fall=person`; classes renamed
    /// alike are merged (one class for --classes, --max-per-class and suppression).
    #[arg(long, value_delimiter = ',', value_name = "FROM=TO", value_parser = parse_rename)]
    rename: Vec<(String, String)>,
    /// libonnxruntime.so (default: ORT_DYLIB_PATH, then the cache scripts/fetch-vision.sh fills).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// CPU threads for inference (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the boxes as JSON.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write a copy of the photo with the boxes and labels drawn.
    #[arg(long, value_name = "PNG_OR_JPEG")]
    annotate: Option<PathBuf>,
    /// Run N times and report the median timings (a benchmark).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
}

fn parse_rename(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
            Ok((from.trim().to_string(), to.trim().to_string()))
        }
        _ => Err(format!(
            "expected FROM=TO (e.g. Normal=person), got `{text}`"
        )),
    }
}

pub(super) fn classify_command(
    images: &[PathBuf],
    labels: &[String],
    template: &str,
    model: &str,
    json: bool,
) -> Result<Outcome> {
    use promptlab::vision::clip::{ZeroShot, resolve_model};
    let labels: Vec<String> = labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        bail!("--labels: expected at least one label, e.g. --labels \"a cat,a dog\"");
    }
    let clip = ZeroShot::load(&resolve_model(model)?)?;
    let loaded = images
        .iter()
        .map(|path| open_image(path))
        .collect::<Result<Vec<_>>>()?;
    let probabilities = clip.classify(&loaded, &labels, template)?;
    let mut out = String::new();
    let mut results = Vec::new();
    for (path, row) in images.iter().zip(&probabilities) {
        let mut ranked: Vec<(&String, f32)> = labels.iter().zip(row.iter().copied()).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push_str(&format!("{}\n", path.display()));
        for (label, p) in &ranked {
            out.push_str(&format!("  {:>6.2}%  {label}\n", p * 100.0));
        }
        results.push(serde_json::json!({
            "image": path.display().to_string(),
            "probabilities": labels.iter().zip(row).map(|(l, p)| (l.clone(), serde_json::json!(p))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    if json {
        out = serde_json::to_string_pretty(&results)? + "\n";
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}

pub(super) fn detect_command(args: DetectArgs) -> Result<Outcome> {
    use promptlab::vision::detect::{self, DetectOptions, Detector};
    if !(0.0..=1.0).contains(&args.min_conf) || !(0.0..=1.0).contains(&args.iou) {
        bail!("--min-conf and --iou are fractions between 0 and 1");
    }
    let image = open_image(&args.image)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut detector = Detector::load(
        &args.model,
        args.names.as_deref(),
        args.onnxruntime.as_deref(),
        threads,
    )?;
    let options = DetectOptions {
        classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
        max_per_class: args.max_per_class,
        min_confidence: args.min_conf,
        iou_threshold: args.iou,
        rename: args.rename.iter().cloned().collect(),
    };
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        runs.push(detector.detect(&image, &options)?);
    }
    let median = |f: fn(&detect::DetectTiming) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(|(_, t)| f(t)).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let timing = detect::DetectTiming {
        preprocess_ms: median(|t| t.preprocess_ms),
        inference_ms: median(|t| t.inference_ms),
        postprocess_ms: median(|t| t.postprocess_ms),
    };
    let detections = runs.swap_remove(0).0;
    let mut out = String::new();
    for d in &detections {
        out.push_str(&format!(
            "{:<12} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]\n",
            d.label, d.confidence, d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]
        ));
    }
    out.push_str(&format!(
        "{} objects · {}×{} input · {}preprocess {:.1} ms, inference {:.1} ms, postprocess {:.1} ms\n",
        detections.len(),
        detector.input.1,
        detector.input.0,
        if args.repeat > 1 {
            format!("median of {} runs: ", args.repeat)
        } else {
            String::new()
        },
        timing.preprocess_ms,
        timing.inference_ms,
        timing.postprocess_ms
    ));
    if let Some(path) = &args.output {
        let json = serde_json::json!({
            "image": args.image.display().to_string(),
            "model": args.model.display().to_string(),
            "width": image.width(),
            "height": image.height(),
            "detections": detections,
            "timing_ms": timing,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("{}: cannot write", path.display()))?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    if let Some(path) = &args.annotate {
        detect::annotate(&image, &detections)
            .save(path)
            .with_context(|| format!("{}: cannot write the annotated image", path.display()))?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}
