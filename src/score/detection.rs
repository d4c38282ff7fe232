//! Scoring object detections: boxes read from an output (or an expected value), matched
//! to the expected boxes one case at a time (the `boxes-match` assertion), and COCO
//! average precision over a whole column (`metrics: detection`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::boxes::{LabelledBox, coco_average_precision, iou};

/// One box: `label` None (in an expected box) matches any label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledRect {
    pub label: Option<String>,
    pub confidence: f64,
    /// `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f64; 4],
}

/// A value that is not a list of boxes.
#[derive(Debug, thiserror::Error)]
pub enum BoxesError {
    #[error("expected a list of boxes, or an object with an `objects` list")]
    NoList,
    #[error("expected boxes as JSON, got text ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("expected a list of boxes")]
    NotAList,
    /// `index` counts from 1.
    #[error("box {index}: {source}")]
    Box {
        index: usize,
        #[source]
        source: BoxError,
    },
}

/// One box of a list that does not read as `{label, box: [x1, y1, x2, y2]}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoxError {
    #[error("expected {BOX_SHAPE}")]
    NoCoordinates,
    #[error("`box` must be 4 numbers [x1, y1, x2, y2] ({BOX_SHAPE})")]
    NotFourNumbers,
    #[error("box [{}, {}, {}, {}] has x2 < x1 or y2 < y1", .0[0], .0[1], .0[2], .0[3])]
    Inverted([f64; 4]),
    #[error("`label` must be a string")]
    LabelNotText,
}

const BOX_SHAPE: &str = "`{label, box: [x1, y1, x2, y2]}`";

/// Reads boxes from a list of `{label, confidence?, box}` objects (`bbox` is accepted
/// too), or from an object holding such a list under `objects`, `boxes` or `detections`.
pub fn parse_boxes(value: &Value) -> Result<Vec<LabelledRect>, BoxesError> {
    let list = match value {
        Value::Array(items) => items,
        Value::Object(map) => ["objects", "boxes", "detections"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))
            .ok_or(BoxesError::NoList)?,
        Value::String(text) => {
            let parsed: Value = serde_json::from_str(text).map_err(BoxesError::NotJson)?;
            return parse_boxes(&parsed);
        }
        _ => return Err(BoxesError::NotAList),
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            parse_box(item).map_err(|source| BoxesError::Box {
                index: i + 1,
                source,
            })
        })
        .collect()
}

fn parse_box(item: &Value) -> Result<LabelledRect, BoxError> {
    let coords = item
        .get("box")
        .or_else(|| item.get("bbox"))
        .and_then(Value::as_array)
        .ok_or(BoxError::NoCoordinates)?;
    let numbers: Vec<f64> = coords.iter().filter_map(Value::as_f64).collect();
    let [x1, y1, x2, y2] = numbers[..] else {
        return Err(BoxError::NotFourNumbers);
    };
    if !(x2 >= x1 && y2 >= y1) {
        return Err(BoxError::Inverted([x1, y1, x2, y2]));
    }
    let label = match item.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(BoxError::LabelNotText),
    };
    let confidence = item
        .get("confidence")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    Ok(LabelledRect {
        label,
        confidence,
        bbox: [x1, y1, x2, y2],
    })
}

/// Labels compare trimmed and lowercased, Unicode and all (`Café` is `café`), the same
/// way for matching and for AP's classes.
fn label_key(label: &str) -> String {
    label.trim().to_lowercase()
}

fn same_label(expected: &LabelledRect, found: &LabelledRect) -> bool {
    match (&expected.label, &found.label) {
        (None, _) => true,
        (Some(a), Some(b)) => label_key(a) == label_key(b),
        (Some(_), None) => false,
    }
}

/// Expected boxes found, missed, and boxes found that match nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxMatch {
    pub matched: usize,
    pub missed: Vec<LabelledRect>,
    pub extra: Vec<LabelledRect>,
}

impl BoxMatch {
    /// F1 of precision and recall; 1 when nothing was expected and nothing found.
    pub fn f1(&self) -> f64 {
        let wrong = self.missed.len() + self.extra.len();
        if self.matched == 0 && wrong == 0 {
            return 1.0;
        }
        2.0 * self.matched as f64 / (2 * self.matched + wrong) as f64
    }
}

/// Greedy matching, most confident found box first, each to the unmatched expected box of
/// the same label it overlaps most, at IoU ≥ `threshold` (as COCO matches).
pub fn match_boxes(expected: &[LabelledRect], found: &[LabelledRect], threshold: f64) -> BoxMatch {
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by(|&a, &b| found[b].confidence.total_cmp(&found[a].confidence));
    let mut taken = vec![false; expected.len()];
    let mut extra = Vec::new();
    let mut matched = 0;
    for index in order {
        let candidate = &found[index];
        let best = expected
            .iter()
            .enumerate()
            .filter(|(i, e)| !taken[*i] && same_label(e, candidate))
            .map(|(i, e)| (i, iou(&e.bbox, &candidate.bbox)))
            .filter(|(_, overlap)| *overlap >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => {
                taken[i] = true;
                matched += 1;
            }
            None => extra.push(candidate.clone()),
        }
    }
    let missed = expected
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(e, _)| e.clone())
        .collect();
    BoxMatch {
        matched,
        missed,
        extra,
    }
}

/// One line: `3 of 4 expected boxes found; missed person [0, 555, 78, 875]; 1 extra: …`.
pub fn describe_match(result: &BoxMatch, threshold: f64) -> String {
    let expected = result.matched + result.missed.len();
    let mut text = if expected == 0 {
        "no boxes expected".to_string()
    } else {
        format!(
            "{} of {expected} expected box{} found at IoU ≥ {threshold}",
            result.matched,
            if expected == 1 { "" } else { "es" }
        )
    };
    let show = |b: &LabelledRect| {
        let [x1, y1, x2, y2] = b.bbox;
        format!(
            "{} [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}]",
            b.label.as_deref().unwrap_or("any")
        )
    };
    if !result.missed.is_empty() {
        let list: Vec<String> = result.missed.iter().take(3).map(show).collect();
        text.push_str(&format!("; missed {}", list.join(", ")));
    }
    if !result.extra.is_empty() {
        let list: Vec<String> = result
            .extra
            .iter()
            .take(3)
            .map(|b| format!("{} {:.2}", show(b), b.confidence))
            .collect();
        text.push_str(&format!(
            "; {} extra: {}",
            result.extra.len(),
            list.join(", ")
        ));
    }
    text
}

/// A detector column's quality over all its cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionReport {
    pub images: usize,
    pub expected_boxes: usize,
    pub found_boxes: usize,
    /// At the IoU threshold of the metrics spec (default 0.5).
    pub iou_threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub ap_50: f64,
    pub ap_75: f64,
    pub map_50_95: f64,
    /// Cases whose output could not be read as boxes (counted as finding nothing).
    pub unreadable: usize,
}

/// `cases` pairs each image's expected boxes with the output's boxes (None: unreadable).
pub fn detection_report(
    cases: &[(Vec<LabelledRect>, Option<Vec<LabelledRect>>)],
    iou_threshold: f64,
) -> DetectionReport {
    // COCO needs class ids: one per distinct (lowercased) label. An unlabelled expected
    // box matches any label, so it takes the label of the found box it overlaps most in
    // its image (the one it would be compared with); with none overlapping it keeps a
    // class of its own, and counts as missed.
    let mut labels: Vec<String> = Vec::new();
    let mut class_of = |label: &Option<String>| -> usize {
        let key = label.as_deref().map(label_key).unwrap_or_default();
        match labels.iter().position(|l| *l == key) {
            Some(i) => i,
            None => {
                labels.push(key);
                labels.len() - 1
            }
        }
    };
    let mut truth = Vec::new();
    let mut found = Vec::new();
    let (mut matched, mut unreadable) = (0, 0);
    for (image, (expected, output)) in cases.iter().enumerate() {
        let output = output.as_deref().unwrap_or_else(|| {
            unreadable += 1;
            &[]
        });
        matched += match_boxes(expected, output, iou_threshold).matched;
        let image = image.to_string();
        for b in expected {
            let label = match &b.label {
                Some(label) => Some(label.clone()),
                None => output
                    .iter()
                    .map(|f| (f, iou(&b.bbox, &f.bbox)))
                    .filter(|(_, overlap)| *overlap > 0.0)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .and_then(|(f, _)| f.label.clone()),
            };
            truth.push(LabelledBox {
                image: image.clone(),
                class_id: class_of(&label),
                bbox: b.bbox,
                score: 1.0,
            });
        }
        for b in output {
            found.push(LabelledBox {
                image: image.clone(),
                class_id: class_of(&b.label),
                bbox: b.bbox,
                score: b.confidence,
            });
        }
    }
    let coco = coco_average_precision(&truth, &found, &[]);
    let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    DetectionReport {
        images: cases.len(),
        expected_boxes: truth.len(),
        found_boxes: found.len(),
        iou_threshold,
        precision: ratio(matched, found.len()),
        recall: ratio(matched, truth.len()),
        ap_50: coco.ap_50.max(0.0),
        ap_75: coco.ap_75.max(0.0),
        map_50_95: coco.map_50_95.max(0.0),
        unreadable,
    }
}

impl DetectionReport {
    pub fn to_text(&self) -> String {
        format!(
            "{} images, {} expected boxes, {} found · precision {:.3}, recall {:.3} at IoU {} · AP@0.5 {:.3}, AP@0.75 {:.3}, mAP@0.5:0.95 {:.3}{}",
            self.images,
            self.expected_boxes,
            self.found_boxes,
            self.precision,
            self.recall,
            self.iou_threshold,
            self.ap_50,
            self.ap_75,
            self.map_50_95,
            if self.unreadable > 0 {
                format!(" · {} outputs were not boxes", self.unreadable)
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rect(label: &str, confidence: f64, bbox: [f64; 4]) -> LabelledRect {
        LabelledRect {
            label: Some(label.into()),
            confidence,
            bbox,
        }
    }

    #[test]
    fn parses_lists_objects_and_text() {
        let list = json!([{"label": "person", "box": [1, 2, 3, 4]}]);
        let wrapped =
            json!({"objects": [{"label": "person", "confidence": 0.5, "bbox": [1, 2, 3, 4]}]});
        assert_eq!(parse_boxes(&list).unwrap()[0].bbox, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(parse_boxes(&wrapped).unwrap()[0].confidence, 0.5);
        let text = json!(wrapped.to_string());
        assert_eq!(parse_boxes(&text).unwrap().len(), 1);
        assert!(parse_boxes(&json!([])).unwrap().is_empty());
        let err = parse_boxes(&json!([{"label": "a", "box": [1, 2, 3]}])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("box 1: `box` must be 4 numbers"),
            "{err}"
        );
        let err = parse_boxes(&json!([{"box": [5, 2, 3, 4]}])).unwrap_err();
        assert!(err.to_string().contains("x2 < x1"), "{err}");
        assert!(parse_boxes(&json!("not json")).is_err());
    }

    #[test]
    fn matching_respects_labels_iou_and_confidence_order() {
        let expected = vec![
            rect("person", 1.0, [0.0, 0.0, 10.0, 10.0]),
            rect("person", 1.0, [20.0, 0.0, 30.0, 10.0]),
        ];
        let found = vec![
            rect("Person", 0.9, [0.0, 0.0, 10.0, 9.0]),  // IoU 0.9
            rect("dog", 0.8, [20.0, 0.0, 30.0, 10.0]),   // wrong label
            rect("person", 0.3, [0.0, 0.0, 10.0, 10.0]), // duplicate
        ];
        let result = match_boxes(&expected, &found, 0.5);
        assert_eq!(result.matched, 1);
        assert_eq!(result.missed.len(), 1);
        assert_eq!(result.extra.len(), 2);
        assert!((result.f1() - 2.0 / 5.0).abs() < 1e-12);
        let text = describe_match(&result, 0.5);
        assert!(text.starts_with("1 of 2 expected boxes found at IoU ≥ 0.5; missed person [20, 0, 30, 10]; 2 extra: dog"), "{text}");
        // No label on the expected box: any label matches.
        let any = vec![LabelledRect {
            label: None,
            ..expected[1].clone()
        }];
        assert_eq!(match_boxes(&any, &found[1..2], 0.5).matched, 1);
        // Nothing expected, nothing found: a perfect score.
        assert_eq!(match_boxes(&[], &[], 0.5).f1(), 1.0);
        let alarm = match_boxes(&[], &found[..1], 0.5);
        assert_eq!(alarm.f1(), 0.0);
        assert!(describe_match(&alarm, 0.5).starts_with("no boxes expected; 1 extra: Person"));
    }

    /// Issue 20: an expected box without a label matches any label in AP as it does in
    /// matching, and labels compare lowercased beyond ASCII in both.
    #[test]
    fn issue_20_unlabelled_boxes_and_unicode_labels_score_alike_everywhere() {
        let any = LabelledRect {
            label: None,
            confidence: 1.0,
            bbox: [0.0, 0.0, 10.0, 10.0],
        };
        let found = vec![rect("person", 0.9, [0.0, 0.0, 10.0, 10.0])];
        let report = detection_report(&[(vec![any], Some(found))], 0.5);
        assert_eq!((report.precision, report.recall), (1.0, 1.0));
        assert!((report.ap_50 - 1.0).abs() < 1e-12, "{report:?}");

        let expected = vec![rect("ÉCOLE", 1.0, [0.0, 0.0, 10.0, 10.0])];
        let found = vec![rect("école", 0.9, [0.0, 0.0, 10.0, 10.0])];
        assert_eq!(match_boxes(&expected, &found, 0.5).matched, 1);
        let report = detection_report(&[(expected, Some(found))], 0.5);
        assert!((report.ap_50 - 1.0).abs() < 1e-12, "{report:?}");
    }

    #[test]
    fn report_counts_precision_recall_and_ap() {
        let truth = vec![rect("person", 1.0, [0.0, 0.0, 10.0, 10.0])];
        let perfect = detection_report(&[(truth.clone(), Some(truth.clone()))], 0.5);
        assert_eq!((perfect.precision, perfect.recall), (1.0, 1.0));
        assert!((perfect.ap_50 - 1.0).abs() < 1e-12 && (perfect.map_50_95 - 1.0).abs() < 1e-12);
        // One image found nothing readable, one found its person plus a false positive
        // ranked below it: recall 1/2, precision 1/2, AP@0.5 = 0.5 (101-point).
        let extra = rect("person", 0.2, [50.0, 50.0, 60.0, 60.0]);
        let report = detection_report(
            &[
                (truth.clone(), None),
                (truth.clone(), Some(vec![truth[0].clone(), extra])),
            ],
            0.5,
        );
        assert_eq!(report.unreadable, 1);
        assert_eq!((report.expected_boxes, report.found_boxes), (2, 2));
        assert_eq!((report.precision, report.recall), (0.5, 0.5));
        assert!(
            (report.ap_50 - 51.0 / 101.0).abs() < 1e-12,
            "{}",
            report.ap_50
        );
    }
}
