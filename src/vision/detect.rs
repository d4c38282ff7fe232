//! Object detection with YOLOv8/YOLO11-style ONNX models exported by Ultralytics, run by
//! ONNX Runtime (`ort`, loading `libonnxruntime.so` at run time): letterboxing, decoding
//! the `[1, 4 + classes, boxes]` head, class-aware non-maximum suppression, and the
//! user's filters (classes, objects per class, minimum confidence).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use image::{DynamicImage, GenericImageView, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::VisionError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in the original image's pixels.
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectOptions {
    /// Keep only these class names (None: all).
    pub classes: Option<Vec<String>>,
    pub max_per_class: Option<usize>,
    pub min_confidence: f32,
    /// Boxes of one class overlapping more than this are the same object.
    pub iou_threshold: f32,
    /// Model class name → the name reported. Classes renamed alike become one class,
    /// for filtering and suppression too (e.g. a fall detector's `Normal` and `Fall`
    /// both as `person`).
    pub rename: BTreeMap<String, String>,
}

impl From<&crate::catalog::DetectSettings> for DetectOptions {
    fn from(settings: &crate::catalog::DetectSettings) -> Self {
        DetectOptions {
            classes: settings.classes.clone(),
            max_per_class: settings.max_per_class,
            min_confidence: settings.min_confidence,
            iou_threshold: settings.iou,
            rename: settings.rename.clone(),
        }
    }
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            classes: None,
            max_per_class: None,
            min_confidence: 0.25,
            iou_threshold: 0.45,
            rename: BTreeMap::new(),
        }
    }
}

/// Milliseconds spent in each stage of one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectTiming {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
}

/// Where ONNX Runtime is looked for: an explicit path, `ORT_DYLIB_PATH`, then the cache
/// that scripts/fetch-vision.sh fills.
pub fn find_onnxruntime(explicit: Option<&Path>) -> Result<PathBuf, VisionError> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .chain(std::iter::once(
            default_cache().join("onnxruntime/libonnxruntime.so.1.32.0"),
        ))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        VisionError::Invalid(format!(
            "ONNX Runtime not found (looked for {}). Install it with scripts/fetch-vision.sh, or point ORT_DYLIB_PATH or --onnxruntime at libonnxruntime.so (for example from `pip install onnxruntime`: site-packages/onnxruntime/capi/libonnxruntime.so.*)",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// `$PROMPTLAB_VISION_CACHE` or `~/.cache/promptlab/vision`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("PROMPTLAB_VISION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/promptlab/vision")
        })
}

/// ONNX Runtime is loaded once per process; a second path is refused rather than ignored.
fn environment(library: &Path) -> Result<&'static ort::environment::Environment, VisionError> {
    static ENV: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> =
        OnceLock::new();
    let loaded = ENV.get_or_init(|| {
        let builder = ort::init_from(library)
            .map_err(|e| format!("{}: cannot load ONNX Runtime: {e}", library.display()))?;
        let env = builder
            .with_name("promptlab")
            .build()
            .map_err(|e| format!("{}: ONNX Runtime did not start: {e}", library.display()))?;
        Ok((library.to_path_buf(), env))
    });
    match loaded {
        Ok((path, env)) if path == library => Ok(env),
        Ok((path, _)) => Err(VisionError::Invalid(format!(
            "ONNX Runtime is already loaded from {}; cannot switch to {} in the same process",
            path.display(),
            library.display()
        ))),
        Err(message) => Err(VisionError::Invalid(message.clone())),
    }
}

pub struct Detector {
    session: ort::session::Session,
    pub names: Vec<String>,
    /// Model input `(height, width)`.
    pub input: (usize, usize),
    pub model_path: PathBuf,
}

impl Detector {
    /// Loads an Ultralytics ONNX detector. Class names come from `names` (one per line,
    /// or a YAML `names:` map as in Ultralytics' dataset files) or else the model's
    /// metadata.
    pub fn load(
        model: &Path,
        names: Option<&Path>,
        onnxruntime: Option<&Path>,
        threads: usize,
    ) -> Result<Detector, VisionError> {
        if !model.is_file() {
            return Err(VisionError::file(model, "not found"));
        }
        let library = find_onnxruntime(onnxruntime)?;
        let env = environment(&library)?;
        let fail =
            |e: ort::Error| VisionError::file(model, format!("not a usable ONNX model: {e}"));
        let session = ort::session::Session::builder(env)
            .map_err(fail)?
            .with_intra_threads(threads.max(1))
            .map_err(|e| VisionError::file(model, e.to_string()))?
            .commit_from_file(model)
            .map_err(fail)?;
        let input = match session
            .inputs()
            .first()
            .map(|i| i.dtype().tensor_shape().map(|s| s.to_vec()))
        {
            Some(Some(dims)) if dims.len() == 4 && dims[1] == 3 => {
                let side = |d: i64| if d > 0 { d as usize } else { 640 };
                (side(dims[2]), side(dims[3]))
            }
            other => {
                return Err(VisionError::file(
                    model,
                    format!("expected one image input [1, 3, H, W], found {other:?}"),
                ));
            }
        };
        let names = match names {
            Some(path) => read_names(path)?,
            None => session
                .metadata()
                .ok()
                .and_then(|m| m.custom("names"))
                .map(|text| parse_names_dict(&text))
                .unwrap_or_default(),
        };
        Ok(Detector {
            session,
            names,
            input,
            model_path: model.to_path_buf(),
        })
    }

    pub fn detect(
        &mut self,
        image: &DynamicImage,
        options: &DetectOptions,
    ) -> Result<(Vec<Detection>, DetectTiming), VisionError> {
        let mut timing = DetectTiming::default();
        let started = Instant::now();
        let (h, w) = self.input;
        let mut letterbox = letterbox(image, w, h);
        let tensor =
            ndarray::Array4::from_shape_vec((1, 3, h, w), std::mem::take(&mut letterbox.pixels))
                .map_err(|e| VisionError::Invalid(e.to_string()))?;
        timing.preprocess_ms = started.elapsed().as_secs_f64() * 1000.0;

        let started = Instant::now();
        let model = self.model_path.clone();
        let fail = |e: ort::Error| VisionError::file(&model, format!("inference failed: {e}"));
        let input = ort::value::TensorRef::from_array_view(&tensor).map_err(fail)?;
        let outputs = self.session.run(ort::inputs![input]).map_err(fail)?;
        let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        timing.inference_ms = started.elapsed().as_secs_f64() * 1000.0;

        let started = Instant::now();
        let [1, rows, boxes] = dims[..] else {
            return Err(not_a_head(&self.model_path, &dims));
        };
        let (rows, boxes) = (rows as usize, boxes as usize);
        if rows < 5 || boxes < rows {
            return Err(not_a_head(&self.model_path, &dims));
        }
        let classes = rows - 4;
        let names = reported_names(&self.names, classes, &options.rename)?;
        // One id per reported name: renamed-alike classes share the first one's id.
        let group: Vec<usize> = names
            .iter()
            .map(|n| names.iter().position(|m| m == n).unwrap_or(0))
            .collect();
        let wanted: Option<Vec<usize>> = match &options.classes {
            None => None,
            Some(list) => {
                let mut ids = Vec::new();
                for name in list {
                    let matching: Vec<usize> = (0..classes)
                        .filter(|&c| names[c].eq_ignore_ascii_case(name))
                        .collect();
                    if matching.is_empty() {
                        return Err(VisionError::Invalid(format!(
                            "unknown class `{name}`: this model knows {}",
                            distinct(&names).join(", ")
                        )));
                    }
                    ids.extend(matching);
                }
                Some(ids)
            }
        };
        let candidates = decode(
            data,
            classes,
            boxes,
            options.min_confidence,
            wanted.as_deref(),
        );
        let candidates = candidates
            .into_iter()
            .map(|c| Candidate {
                class_id: group[c.class_id],
                ..c
            })
            .collect();
        let kept = non_max_suppression(candidates, options.iou_threshold, options.max_per_class);
        let (iw, ih) = image.dimensions();
        let detections = kept
            .into_iter()
            .map(|c| {
                let [x1, y1, x2, y2] = letterbox.to_original(c.bbox);
                Detection {
                    label: names[c.class_id].clone(),
                    class_id: c.class_id,
                    confidence: c.confidence,
                    bbox: [
                        x1.clamp(0.0, iw as f32),
                        y1.clamp(0.0, ih as f32),
                        x2.clamp(0.0, iw as f32),
                        y2.clamp(0.0, ih as f32),
                    ],
                }
            })
            .collect();
        timing.postprocess_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok((detections, timing))
    }
}

/// The model's class names (`class{i}` where unknown) after the user's renames; a rename
/// of a class the model does not have is refused rather than silently ignored.
fn reported_names(
    known: &[String],
    classes: usize,
    rename: &BTreeMap<String, String>,
) -> Result<Vec<String>, VisionError> {
    let names: Vec<String> = (0..classes)
        .map(|c| known.get(c).cloned().unwrap_or_else(|| format!("class{c}")))
        .collect();
    if let Some(missing) = rename.keys().find(|k| !names.contains(k)) {
        return Err(VisionError::Invalid(format!(
            "cannot rename `{missing}`: this model knows {}",
            names.join(", ")
        )));
    }
    Ok(names
        .into_iter()
        .map(|n| rename.get(&n).cloned().unwrap_or(n))
        .collect())
}

fn distinct(names: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for name in names {
        if !seen.contains(name) {
            seen.push(name.clone());
        }
    }
    seen
}

fn not_a_head(model: &Path, dims: &[i64]) -> VisionError {
    VisionError::file(
        model,
        format!(
            "output shape {dims:?} is not a YOLO detection head; expected [1, 4 + classes, boxes]"
        ),
    )
}

/// Ultralytics' metadata: `{0: 'person', 1: 'bicycle', …}`.
pub fn parse_names_dict(text: &str) -> Vec<String> {
    let mut names: Vec<(usize, String)> = Vec::new();
    for part in text.trim_matches(|c| c == '{' || c == '}').split(',') {
        if let Some((id, name)) = part.split_once(':')
            && let Ok(id) = id.trim().parse::<usize>()
        {
            names.push((
                id,
                name.trim()
                    .trim_matches(|c| c == '\'' || c == '"')
                    .to_string(),
            ));
        }
    }
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

/// One name per line, or an Ultralytics dataset YAML with a `names:` map or list.
pub fn read_names(path: &Path) -> Result<Vec<String>, VisionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| VisionError::file(path, format!("cannot read: {e}")))?;
    if let Ok(value) = crate::yaml::value_from_str(path, &text)
        && let Some(names) = value.get("names")
    {
        let list: Vec<String> = match names {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(map) => {
                let mut pairs: Vec<(usize, String)> = map
                    .iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                    .collect();
                pairs.sort();
                pairs.into_iter().map(|(_, n)| n).collect()
            }
            _ => Vec::new(),
        };
        if !list.is_empty() {
            return Ok(list);
        }
    }
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(VisionError::file(
            path,
            "no class names (expected one per line, or a YAML `names:` map)",
        ));
    }
    Ok(names)
}

/// The image resized to fit, centred on grey (114) padding, as Ultralytics does.
pub struct Letterbox {
    /// `[3, h, w]` RGB in 0..=1.
    pub pixels: Vec<f32>,
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    fn to_original(&self, [x1, y1, x2, y2]: [f32; 4]) -> [f32; 4] {
        [
            (x1 - self.pad_x) / self.scale,
            (y1 - self.pad_y) / self.scale,
            (x2 - self.pad_x) / self.scale,
            (y2 - self.pad_y) / self.scale,
        ]
    }
}

pub fn letterbox(image: &DynamicImage, width: usize, height: usize) -> Letterbox {
    let (iw, ih) = image.dimensions();
    let scale = (width as f32 / iw as f32).min(height as f32 / ih as f32);
    let (nw, nh) = (
        ((iw as f32 * scale).round() as u32).max(1),
        ((ih as f32 * scale).round() as u32).max(1),
    );
    let resized = image
        .resize_exact(nw, nh, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let (pad_x, pad_y) = ((width as u32 - nw) / 2, (height as u32 - nh) / 2);
    let mut canvas = RgbImage::from_pixel(width as u32, height as u32, Rgb([114, 114, 114]));
    image::imageops::replace(&mut canvas, &resized, i64::from(pad_x), i64::from(pad_y));
    let plane = width * height;
    let mut pixels = vec![0f32; 3 * plane];
    for (i, p) in canvas.pixels().enumerate() {
        for c in 0..3 {
            pixels[c * plane + i] = f32::from(p[c]) / 255.0;
        }
    }
    Letterbox {
        pixels,
        scale,
        pad_x: pad_x as f32,
        pad_y: pad_y as f32,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in model input pixels.
    pub bbox: [f32; 4],
}

/// Rows 0–3 are the box centre and size, rows 4.. the class scores, one column per box.
pub fn decode(
    data: &[f32],
    classes: usize,
    boxes: usize,
    min_confidence: f32,
    wanted: Option<&[usize]>,
) -> Vec<Candidate> {
    let at = |row: usize, col: usize| data[row * boxes + col];
    let mut out = Vec::new();
    for b in 0..boxes {
        let (class_id, confidence) = (0..classes)
            .filter(|c| wanted.is_none_or(|w| w.contains(c)))
            .map(|c| (c, at(4 + c, b)))
            .fold(
                (0, f32::NEG_INFINITY),
                |best, x| if x.1 > best.1 { x } else { best },
            );
        if confidence < min_confidence {
            continue;
        }
        let (cx, cy, w, h) = (at(0, b), at(1, b), at(2, b), at(3, b));
        out.push(Candidate {
            class_id,
            confidence,
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
        });
    }
    out
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy, per class: the most confident box wins and suppresses its class's boxes that
/// overlap it by more than `threshold`; at most `max_per_class` survive per class.
pub fn non_max_suppression(
    mut candidates: Vec<Candidate>,
    threshold: f32,
    max_per_class: Option<usize>,
) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        let same_class = || kept.iter().filter(|k| k.class_id == c.class_id);
        if max_per_class.is_some_and(|m| same_class().count() >= m) {
            continue;
        }
        if same_class().all(|k| iou(k.bbox, c.bbox) <= threshold) {
            kept.push(c);
        }
    }
    kept
}

/// Draws each box with its label and confidence (8×8 bitmap font).
pub fn annotate(image: &DynamicImage, detections: &[Detection]) -> RgbImage {
    const COLOURS: [[u8; 3]; 6] = [
        [255, 56, 56],
        [56, 56, 255],
        [56, 200, 56],
        [255, 157, 0],
        [200, 0, 200],
        [0, 200, 200],
    ];
    let mut canvas = image.to_rgb8();
    let (w, h) = canvas.dimensions();
    let thickness = ((w.max(h) / 300).max(2)) as i64;
    for d in detections {
        let colour = Rgb(COLOURS[d.class_id % COLOURS.len()]);
        let [x1, y1, x2, y2] = d.bbox.map(|v| v.round() as i64);
        let mut put = |x: i64, y: i64, c: Rgb<u8>| {
            if x >= 0 && y >= 0 && x < i64::from(w) && y < i64::from(h) {
                canvas.put_pixel(x as u32, y as u32, c);
            }
        };
        for t in 0..thickness {
            for x in x1..=x2 {
                put(x, y1 + t, colour);
                put(x, y2 - t, colour);
            }
            for y in y1..=y2 {
                put(x1 + t, y, colour);
                put(x2 - t, y, colour);
            }
        }
        // The label on a filled band above the box (inside it at the top edge).
        let label = format!("{} {:.2}", d.label, d.confidence);
        let scale = 2i64;
        let band_h = 8 * scale + 4;
        let top = if y1 - band_h >= 0 { y1 - band_h } else { y1 };
        let band_w = label.chars().count() as i64 * 8 * scale + 4;
        for y in top..top + band_h {
            for x in x1..x1 + band_w {
                put(x, y, colour);
            }
        }
        for (i, ch) in label.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        for sy in 0..scale {
                            for sx in 0..scale {
                                put(
                                    x1 + 2 + (i as i64 * 8 + col) * scale + sx,
                                    top + 2 + row as i64 * scale + sy,
                                    Rgb([255, 255, 255]),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]), 0.0);
        // 5×10 overlap over 150 = 1/3.
        assert!((iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    }

    fn cand(class_id: usize, confidence: f32, x: f32) -> Candidate {
        Candidate {
            class_id,
            confidence,
            bbox: [x, 0.0, x + 10.0, 10.0],
        }
    }

    #[test]
    fn nms_is_per_class_and_respects_the_limit() {
        let boxes = vec![
            cand(0, 0.9, 0.0),
            cand(0, 0.8, 1.0),
            cand(1, 0.7, 1.0),
            cand(0, 0.6, 50.0),
            cand(0, 0.5, 100.0),
        ];
        let kept = non_max_suppression(boxes.clone(), 0.45, None);
        let summary: Vec<(usize, f32)> = kept.iter().map(|c| (c.class_id, c.confidence)).collect();
        // 0.8 overlaps 0.9 (same class) and goes; class 1's overlapping box stays.
        assert_eq!(summary, [(0, 0.9), (1, 0.7), (0, 0.6), (0, 0.5)]);
        let limited = non_max_suppression(boxes, 0.45, Some(2));
        assert_eq!(limited.iter().filter(|c| c.class_id == 0).count(), 2);
    }

    #[test]
    fn decoding_filters_by_confidence_and_class() {
        // Two boxes, two classes: rows cx, cy, w, h, score0, score1.
        let data = [
            10.0, 50.0, 10.0, 50.0, 4.0, 8.0, 4.0, 8.0, 0.9, 0.1, 0.2, 0.3,
        ];
        let all = decode(&data, 2, 2, 0.25, None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].class_id, 0);
        assert_eq!(all[0].bbox, [8.0, 8.0, 12.0, 12.0]);
        assert_eq!(all[1].class_id, 1);
        let only_1 = decode(&data, 2, 2, 0.25, Some(&[1]));
        assert_eq!(only_1.len(), 1);
        assert_eq!(only_1[0].confidence, 0.3);
    }

    #[test]
    fn class_names_from_metadata_and_files() {
        assert_eq!(
            parse_names_dict("{0: 'Normal', 1: 'Fall'}"),
            ["Normal", "Fall"]
        );
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("coco.yaml");
        std::fs::write(&yaml, "path: x\nnames:\n  0: person\n  1: bicycle\n").unwrap();
        assert_eq!(read_names(&yaml).unwrap(), ["person", "bicycle"]);
        let lines = dir.path().join("coco.names");
        std::fs::write(&lines, "person\nbicycle\n\n").unwrap();
        assert_eq!(read_names(&lines).unwrap(), ["person", "bicycle"]);
    }

    #[test]
    fn letterbox_centres_and_maps_back() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(200, 100, Rgb([255, 0, 0])));
        let lb = letterbox(&image, 64, 64);
        assert_eq!(lb.scale, 0.32);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 16.0));
        // Padding is grey, the image red.
        assert!((lb.pixels[0] - 114.0 / 255.0).abs() < 1e-6);
        assert_eq!(lb.pixels[32 * 64 + 32], 1.0);
        assert_eq!(
            lb.to_original([0.0, 16.0, 64.0, 48.0]),
            [0.0, 0.0, 200.0, 100.0]
        );
    }
}
