//! Object detection with YOLOv8/YOLO11-style ONNX models exported by Ultralytics, run by
//! ONNX Runtime (`ort`, loading `libonnxruntime.so` at run time): letterboxing, decoding
//! the `[1, 4 + classes, boxes]` head, class-aware non-maximum suppression, and the
//! user's filters (classes, objects per class, minimum confidence).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use image::{DynamicImage, GenericImageView};
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

mod boxes;
pub use boxes::{Candidate, Letterbox, annotate, decode, iou, letterbox, non_max_suppression};

#[cfg(test)]
mod tests {
    use super::*;

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
}
