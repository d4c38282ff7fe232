//! The geometry around the network: letterboxing an image to the model's input, decoding
//! the head's boxes, class-aware non-maximum suppression, and drawing what was found.

use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

use super::Detection;

/// The image resized to fit, centred on grey (114) padding, as Ultralytics does.
pub struct Letterbox {
    /// `[3, h, w]` RGB in 0..=1.
    pub pixels: Vec<f32>,
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    pub(super) fn to_original(&self, [x1, y1, x2, y2]: [f32; 4]) -> [f32; 4] {
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
