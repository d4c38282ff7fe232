//! Detection metrics: IoU, precision and recall at a threshold, and COCO's average
//! precision (AP@0.5, AP@0.75 and mAP@0.5:0.95 with 101-point interpolation), computed
//! the way pycocotools does (greedy matching by score per image and class, area "all",
//! up to 100 detections per image), so figures can be compared with published ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A box `[x1, y1, x2, y2]` of a class in an image; `score` is 1 for ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledBox {
    pub image: String,
    pub class_id: usize,
    pub bbox: [f64; 4],
    #[serde(default = "one")]
    pub score: f64,
}

fn one() -> f64 {
    1.0
}

pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    pub class_id: usize,
    pub ap_50: f64,
    pub ap_75: f64,
    pub map_50_95: f64,
    pub ground_truth: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    pub ap_50: f64,
    pub ap_75: f64,
    pub map_50_95: f64,
    pub per_class: Vec<ClassAp>,
}

/// numpy's `linspace(start, stop, n)`: `start + i·step`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    let mut values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
    values[n - 1] = stop;
    values
}

const MAX_DETECTIONS: usize = 100;

/// One image's ground truth and detections of one class.
type TruthAndDetections<'a> = (Vec<&'a LabelledBox>, Vec<&'a LabelledBox>);

/// Per IoU threshold, the (score, matched) of every kept detection of one class, and the
/// number of ground-truth boxes of that class.
fn match_class(
    truth: &[&LabelledBox],
    detections: &[&LabelledBox],
    thresholds: &[f64],
) -> (Vec<Vec<(f64, bool)>>, usize) {
    // Images in pycocotools' order (numeric ids ascending): score ties across images
    // are then broken the same way.
    let key = |image: &str| {
        (
            image.parse::<u64>().map_or(1, |_| 0),
            image.parse::<u64>().unwrap_or(0),
            image.to_string(),
        )
    };
    let mut by_image: BTreeMap<(u8, u64, String), TruthAndDetections> = BTreeMap::new();
    for t in truth {
        by_image.entry(key(&t.image)).or_default().0.push(t);
    }
    for d in detections {
        by_image.entry(key(&d.image)).or_default().1.push(d);
    }
    let mut per_threshold: Vec<Vec<(f64, bool)>> = vec![Vec::new(); thresholds.len()];
    for (gts, mut dts) in by_image.into_values() {
        // Stable sort by score, highest first, then at most 100 per image.
        dts.sort_by(|a, b| b.score.total_cmp(&a.score));
        dts.truncate(MAX_DETECTIONS);
        for (t, &threshold) in thresholds.iter().enumerate() {
            let mut taken = vec![false; gts.len()];
            for d in &dts {
                let mut best = threshold.min(1.0 - 1e-10);
                let mut matched = None;
                for (g, gt) in gts.iter().enumerate() {
                    if taken[g] {
                        continue;
                    }
                    let overlap = iou(&d.bbox, &gt.bbox);
                    if overlap < best {
                        continue;
                    }
                    best = overlap;
                    matched = Some(g);
                }
                if let Some(g) = matched {
                    taken[g] = true;
                }
                per_threshold[t].push((d.score, matched.is_some()));
            }
        }
    }
    (per_threshold, truth.len())
}

/// 101-point interpolated precision (COCO's), or None when the class has no ground truth.
fn average_precision(
    mut scored: Vec<(f64, bool)>,
    ground_truth: usize,
    recall_points: &[f64],
) -> Option<f64> {
    if ground_truth == 0 {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut recall = Vec::with_capacity(scored.len());
    let mut precision = Vec::with_capacity(scored.len());
    for (_, matched) in &scored {
        if *matched {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        recall.push(tp / ground_truth as f64);
        precision.push(tp / (tp + fp + f64::EPSILON));
    }
    for i in (1..precision.len()).rev() {
        if precision[i] > precision[i - 1] {
            precision[i - 1] = precision[i];
        }
    }
    let sum: f64 = recall_points
        .iter()
        .map(|&r| {
            // numpy's searchsorted(side='left'): the first index with recall >= r.
            let at = recall.partition_point(|&x| x < r);
            precision.get(at).copied().unwrap_or(0.0)
        })
        .sum();
    Some(sum / recall_points.len() as f64)
}

/// COCO average precision over `classes` (all classes present when empty).
pub fn coco_average_precision(
    truth: &[LabelledBox],
    detections: &[LabelledBox],
    classes: &[usize],
) -> CocoResult {
    let thresholds = linspace(0.5, 0.95, 10);
    let recall_points = linspace(0.0, 1.0, 101);
    let mut class_ids: Vec<usize> = if classes.is_empty() {
        truth.iter().chain(detections).map(|b| b.class_id).collect()
    } else {
        classes.to_vec()
    };
    class_ids.sort_unstable();
    class_ids.dedup();
    let mut per_class = Vec::new();
    // (sum, count) of AP over classes with ground truth, per threshold.
    let mut totals = vec![(0.0f64, 0usize); thresholds.len()];
    for &class_id in &class_ids {
        let gts: Vec<&LabelledBox> = truth.iter().filter(|b| b.class_id == class_id).collect();
        let dts: Vec<&LabelledBox> = detections
            .iter()
            .filter(|b| b.class_id == class_id)
            .collect();
        let (matches, count) = match_class(&gts, &dts, &thresholds);
        let aps: Vec<Option<f64>> = matches
            .into_iter()
            .map(|m| average_precision(m, count, &recall_points))
            .collect();
        if aps.iter().all(Option::is_none) {
            continue;
        }
        for (total, ap) in totals.iter_mut().zip(&aps) {
            if let Some(ap) = ap {
                total.0 += ap;
                total.1 += 1;
            }
        }
        let values: Vec<f64> = aps.iter().map(|a| a.unwrap_or(0.0)).collect();
        per_class.push(ClassAp {
            class_id,
            ap_50: values[0],
            ap_75: values[5],
            map_50_95: values.iter().sum::<f64>() / values.len() as f64,
            ground_truth: count,
        });
    }
    let mean = |(sum, n): (f64, usize)| if n == 0 { -1.0 } else { sum / n as f64 };
    let all: (f64, usize) = totals
        .iter()
        .fold((0.0, 0), |acc, t| (acc.0 + t.0, acc.1 + t.1));
    CocoResult {
        ap_50: mean(totals[0]),
        ap_75: mean(totals[5]),
        map_50_95: mean(all),
        per_class,
    }
}

/// Precision and recall of the detections scoring at least `min_score`, matched to
/// ground truth of the same class at IoU ≥ `iou_threshold`.
pub fn precision_recall(
    truth: &[LabelledBox],
    detections: &[LabelledBox],
    iou_threshold: f64,
    min_score: f64,
) -> (f64, f64) {
    let kept: Vec<&LabelledBox> = detections.iter().filter(|d| d.score >= min_score).collect();
    let mut classes: Vec<usize> = truth
        .iter()
        .map(|b| b.class_id)
        .chain(kept.iter().map(|b| b.class_id))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let (mut tp, mut found) = (0usize, 0usize);
    for class_id in classes {
        let gts: Vec<&LabelledBox> = truth.iter().filter(|b| b.class_id == class_id).collect();
        let dts: Vec<&LabelledBox> = kept
            .iter()
            .copied()
            .filter(|b| b.class_id == class_id)
            .collect();
        let (matches, _) = match_class(&gts, &dts, &[iou_threshold]);
        tp += matches[0].iter().filter(|m| m.1).count();
        found += matches[0].len();
    }
    let precision = if found == 0 {
        0.0
    } else {
        tp as f64 / found as f64
    };
    let recall = if truth.is_empty() {
        0.0
    } else {
        tp as f64 / truth.len() as f64
    };
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed fixture: synthetic boxes and pycocotools' results on them.
    #[test]
    fn matches_pycocotools_on_the_fixture() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/detect/coco_eval.json"))
                .unwrap();
        let to_box = |v: &serde_json::Value, score: f64| {
            let b: Vec<f64> = v["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            LabelledBox {
                image: v["image_id"].to_string(),
                class_id: v["category_id"].as_u64().unwrap() as usize,
                bbox: [b[0], b[1], b[0] + b[2], b[1] + b[3]],
                score,
            }
        };
        let truth: Vec<LabelledBox> = fixture["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| to_box(a, 1.0))
            .collect();
        let detections: Vec<LabelledBox> = fixture["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| to_box(d, d["score"].as_f64().unwrap()))
            .collect();
        let result = coco_average_precision(&truth, &detections, &[1, 2, 3]);
        let expected = &fixture["expected"]["all"];
        for (ours, key) in [
            (result.ap_50, "ap_50"),
            (result.ap_75, "ap_75"),
            (result.map_50_95, "map_50_95"),
        ] {
            let theirs = expected[key].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-9,
                "{key}: ours {ours}, pycocotools {theirs}"
            );
        }
        for (class, name) in [(1, "person"), (2, "car"), (3, "dog")] {
            let ours = result
                .per_class
                .iter()
                .find(|c| c.class_id == class)
                .unwrap();
            let theirs = &fixture["expected"]["per_class"][name];
            assert!(
                (ours.ap_50 - theirs["ap_50"].as_f64().unwrap()).abs() < 1e-9,
                "{name} AP50"
            );
            assert!(
                (ours.map_50_95 - theirs["map_50_95"].as_f64().unwrap()).abs() < 1e-9,
                "{name} mAP"
            );
        }
    }

    #[test]
    fn precision_and_recall_at_a_threshold() {
        let gt = |x: f64| LabelledBox {
            image: "a".into(),
            class_id: 0,
            bbox: [x, 0.0, x + 10.0, 10.0],
            score: 1.0,
        };
        let dt = |x: f64, s: f64| LabelledBox { score: s, ..gt(x) };
        let truth = [gt(0.0), gt(100.0)];
        let detections = [dt(1.0, 0.9), dt(2.0, 0.8), dt(200.0, 0.2)];
        // One true positive, a duplicate (false positive); the low score is left out.
        assert_eq!(precision_recall(&truth, &detections, 0.5, 0.5), (0.5, 0.5));
        assert_eq!(
            precision_recall(&truth, &detections, 0.5, 0.0),
            (1.0 / 3.0, 0.5)
        );
    }
}
