//! The vision models as tools: the digit CNN (`classify_digit`), a YOLO detector with the
//! user's filters (`detect_objects`) and CLIP zero-shot labels (`classify_image`). Models
//! load on first use, so offering a tool costs nothing until the model calls it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError};
use crate::catalog::DetectSettings;
use crate::vision::clip::ZeroShot;
use crate::vision::detect::Detector;
use crate::vision::image_input;
use crate::vision::train::DigitClassifier;

fn image_arg(args: &Value, context: &ToolContext) -> Result<(String, PathBuf), ToolError> {
    let path = args
        .get("image")
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::Arguments("expected `image`, a path to an image file".into()))?;
    Ok((path.to_string(), context.resolve(path)?))
}

fn open_image(path: &str, real: &Path) -> Result<image::DynamicImage, ToolError> {
    crate::vision::image_input::open_image(real).map_err(|e| match e {
        crate::vision::VisionError::File { message, .. } => {
            ToolError::Failed(format!("`{path}`: {message}"))
        }
        other => ToolError::Failed(format!("`{path}`: {other}")),
    })
}

fn image_property() -> Value {
    json!({"type": "string", "description": "path to the image, relative to the project"})
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

pub struct ClassifyDigit {
    weights: PathBuf,
    model: Option<DigitClassifier>,
}

impl ClassifyDigit {
    pub fn new(weights: PathBuf) -> ClassifyDigit {
        ClassifyDigit {
            weights,
            model: None,
        }
    }
}

impl Tool for ClassifyDigit {
    fn name(&self) -> &'static str {
        "classify_digit"
    }

    fn description(&self) -> String {
        "Reads a scan of ONE handwritten digit (0-9) and returns the digit with its probability. Only for digit scans, never for photos.".into()
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"image": image_property()},
            "required": ["image"],
            "additionalProperties": false
        })
    }

    fn call(&mut self, args: &Value, context: &ToolContext) -> Result<Value, ToolError> {
        let (path, real) = image_arg(args, context)?;
        if self.model.is_none() {
            let loaded = DigitClassifier::load(&self.weights)
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            self.model = Some(loaded);
        }
        let Some(model) = &mut self.model else {
            return Err(ToolError::Failed("the digit model did not load".into()));
        };
        let size = model.card.input[1];
        let pixels = image_input::digit_from_file(&real, size)
            .map_err(|e| ToolError::Failed(format!("`{path}`: {e}")))?;
        let probabilities = model
            .predict(&pixels)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let classes = &model.card.classes;
        let shown =
            |(class, p): (usize, f32)| json!({"digit": classes[class], "probability": round(p)});
        let best = ranked.first().copied().map(shown);
        let runner_up = ranked.get(1).copied().map(shown);
        Ok(json!({ "image": path, "best": best, "runner_up": runner_up }))
    }
}

/// One detector behind `detect_objects`, with the catalog's settings for it.
struct DetectorBackend {
    detector: Detector,
    settings: DetectSettings,
    /// Class names it reports (after renames, within the catalog's class filter).
    classes: Vec<String>,
}

/// `detect_objects`: one or more detectors (say, people and faces) behind one tool; the
/// model sees the union of their classes and each request goes to the detectors that
/// know the classes asked for.
pub struct DetectObjects {
    backends: Vec<DetectorBackend>,
    classes: Vec<String>,
}

impl DetectObjects {
    /// Loads the detectors now: their class names go into the argument schema, so the
    /// grammar only lets the model ask for classes that exist.
    pub fn load(models: &[(String, PathBuf, DetectSettings)]) -> Result<DetectObjects, ToolError> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut backends = Vec::new();
        let mut all_classes: Vec<String> = Vec::new();
        for (name, path, settings) in models {
            let detector = Detector::load(path, settings.names.as_deref(), None, threads)
                .map_err(|e| ToolError::Failed(format!("`{name}`: {e}")))?;
            let mut classes: Vec<String> = Vec::new();
            for model_name in &detector.names {
                let shown = settings.rename.get(model_name).unwrap_or(model_name);
                let wanted = settings
                    .classes
                    .as_ref()
                    .is_none_or(|keep| keep.iter().any(|k| k.eq_ignore_ascii_case(shown)));
                if wanted && !classes.contains(shown) {
                    classes.push(shown.clone());
                }
            }
            for class in &classes {
                if !all_classes.contains(class) {
                    all_classes.push(class.clone());
                }
            }
            backends.push(DetectorBackend {
                detector,
                settings: settings.clone(),
                classes,
            });
        }
        Ok(DetectObjects {
            backends,
            classes: all_classes,
        })
    }
}

impl Tool for DetectObjects {
    fn name(&self) -> &'static str {
        "detect_objects"
    }

    fn description(&self) -> String {
        format!(
            "Counts and locates objects in a photo: returns how many of each class it sees, with boxes [x1, y1, x2, y2] in pixels and confidences. Use it to answer how many, whether there are, or where. Classes it knows: {}.",
            self.classes.join(", ")
        )
    }

    fn parameters(&self) -> Value {
        let mut class = json!({"type": "string"});
        if !self.classes.is_empty() {
            class["enum"] = json!(self.classes);
        }
        json!({
            "type": "object",
            "properties": {
                "image": image_property(),
                // `null` lets a small model say "no filter" while following the shape.
                "classes": {"type": ["array", "null"], "items": class, "default": null, "description": "only these classes; null for all"},
                "max_per_class": {"type": ["integer", "null"], "minimum": 1, "default": null, "description": "list the boxes of at most this many objects per class (the counts still include all); null to list all"},
                "min_confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "default": null, "description": "ignore objects less confident than this (0 to 1); null for each detector's own floor"}
            },
            "required": ["image"],
            "additionalProperties": false
        })
    }

    fn call(&mut self, args: &Value, context: &ToolContext) -> Result<Value, ToolError> {
        let (path, real) = image_arg(args, context)?;
        let requested: Option<Vec<String>> = args
            .get("classes")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|names| !names.is_empty());
        if let Some(unknown) = requested.iter().flatten().find(|name| {
            !self
                .classes
                .iter()
                .any(|known| known.eq_ignore_ascii_case(name))
        }) {
            return Err(ToolError::Arguments(format!(
                "unknown class `{unknown}`; classes: {}",
                self.classes.join(", ")
            )));
        }
        let min_confidence = args
            .get("min_confidence")
            .and_then(Value::as_f64)
            .map(|c| c.clamp(0.0, 1.0) as f32);
        let image = open_image(&path, &real)?;
        let mut found = Vec::new();
        // Objects a raised floor hid: seen at the detector's own floor, below the asked one.
        let mut below_floor: BTreeMap<String, usize> = BTreeMap::new();
        // Every class asked about gets a count, zero included: "no face" is an answer.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut cap = args
            .get("max_per_class")
            .and_then(Value::as_u64)
            .map(|n| n.max(1) as usize);
        for backend in &mut self.backends {
            let mut options = crate::vision::detect::DetectOptions::from(&backend.settings);
            let asked: Vec<String> = match &requested {
                Some(names) => backend
                    .classes
                    .iter()
                    .filter(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c)))
                    .cloned()
                    .collect(),
                None => backend.classes.clone(),
            };
            if asked.is_empty() {
                continue;
            }
            for class in &asked {
                counts.insert(class.clone(), 0);
            }
            options.classes = Some(asked);
            // The cap limits the boxes listed, not the counts: detect everything, then
            // list the most confident per class below.
            cap = cap.or(options.max_per_class);
            options.max_per_class = None;
            // Detected at the lower of the two floors; greedy suppression keeps the more
            // confident box of an overlapping pair, so the boxes above the asked floor are
            // the same as when detecting at that floor.
            let floor = min_confidence.unwrap_or(options.min_confidence);
            options.min_confidence = options.min_confidence.min(floor);
            let (detections, _) = backend
                .detector
                .detect(&image, &options)
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            for d in detections {
                if d.confidence >= floor {
                    found.push(d);
                } else {
                    *below_floor.entry(d.label.clone()).or_default() += 1;
                }
            }
        }
        let mut listed: BTreeMap<String, usize> = BTreeMap::new();
        let mut objects = Vec::new();
        for d in &found {
            *counts.entry(d.label.clone()).or_default() += 1;
            let seen = listed.entry(d.label.clone()).or_default();
            *seen += 1;
            if cap.is_none_or(|m| *seen <= m) {
                objects.push(json!({
                    "label": d.label,
                    "confidence": round(d.confidence),
                    "box": d.bbox.map(|v| v.round()),
                }));
            }
        }
        let mut result = json!({"image": path});
        // A total over several classes (people plus faces) reads as a count of people.
        if counts.len() == 1 {
            result["count"] = json!(found.len());
        }
        result["counts"] = json!(counts);
        result["objects"] = json!(objects);
        let mut notes = Vec::new();
        if let Some(m) = cap
            && objects_left_out(&counts, m)
        {
            notes.push(format!(
                "objects lists at most {m} per class, the most confident; the counts include all"
            ));
        }
        if let Some(floor) = min_confidence
            && !below_floor.is_empty()
        {
            notes.push(format!(
                "below_min_confidence counts objects also seen, with confidence under {floor}"
            ));
            result["below_min_confidence"] = json!(below_floor);
        }
        if !notes.is_empty() {
            result["note"] = json!(notes.join("; "));
        }
        Ok(result)
    }
}

fn objects_left_out(counts: &BTreeMap<String, usize>, cap: usize) -> bool {
    counts.values().any(|&n| n > cap)
}

pub struct ClassifyImage {
    dir: PathBuf,
    template: String,
    model: Option<ZeroShot>,
}

impl ClassifyImage {
    pub fn new(dir: PathBuf, template: String) -> ClassifyImage {
        ClassifyImage {
            dir,
            template,
            model: None,
        }
    }
}

impl Tool for ClassifyImage {
    fn name(&self) -> &'static str {
        "classify_image"
    }

    fn description(&self) -> String {
        "Says which of the given labels best describes a photo (CLIP zero-shot), with a probability per label.".into()
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "image": image_property(),
                "labels": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 2, "description": "candidate labels, e.g. [\"a cat\", \"a dog\"]"}
            },
            "required": ["image", "labels"],
            "additionalProperties": false
        })
    }

    fn call(&mut self, args: &Value, context: &ToolContext) -> Result<Value, ToolError> {
        let (path, real) = image_arg(args, context)?;
        let labels: Vec<String> = args
            .get("labels")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if labels.is_empty() {
            return Err(ToolError::Arguments(
                "expected `labels`, a list of at least one label".into(),
            ));
        }
        if self.model.is_none() {
            let loaded = ZeroShot::load(&self.dir).map_err(|e| ToolError::Failed(e.to_string()))?;
            self.model = Some(loaded);
        }
        let Some(model) = &self.model else {
            return Err(ToolError::Failed("the CLIP model did not load".into()));
        };
        let image = open_image(&path, &real)?;
        let probabilities = model
            .classify(&[image], &labels, &self.template)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let row = probabilities.into_iter().next().unwrap_or_default();
        let mut ranked: Vec<(String, f64)> = labels
            .iter()
            .cloned()
            .zip(row.into_iter().map(round))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(json!({
            "image": path,
            "best": ranked[0].0,
            "probabilities": ranked
                .into_iter()
                .map(|(label, p)| (label, json!(p)))
                .collect::<serde_json::Map<String, Value>>(),
        }))
    }
}
