//! Case pictures for the HTML report: a case whose variables name an image file (a
//! detection or digit set's `image`) carries a small copy of it, inline as a data URI so
//! the page stays one file, with the expected boxes and each column's found boxes, which
//! the page draws over it.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::score::detection::{LabelledRect, parse_boxes};

/// Wider pictures are scaled down to this (boxes keep the original's coordinates).
const MAX_WIDTH: u32 = 480;
/// Pictures at most this wide (MNIST digits) are kept as PNG and drawn enlarged.
const PIXEL_ART: u32 = 64;

/// The case's picture as the page reads it: `{src, width, height, expected}`, or None
/// when no variable names an image file that loads.
pub(super) fn case_picture(
    eval_set_path: &Path,
    vars: &serde_json::Map<String, Value>,
    expected: Option<&Value>,
) -> Option<Value> {
    let path = crate::evalset::image_in_vars(eval_set_path, vars)?;
    let picture = image::open(&path).ok()?;
    let (width, height) = (picture.width(), picture.height());
    let mut bytes = Vec::new();
    let mime = if width <= PIXEL_ART {
        picture
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .ok()?;
        "image/png"
    } else {
        let small = if width > MAX_WIDTH {
            picture.thumbnail(MAX_WIDTH, u32::MAX)
        } else {
            picture
        };
        small
            .to_rgb8()
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .ok()?;
        "image/jpeg"
    };
    let src = format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    Some(json!({
        "src": src,
        "width": width,
        "height": height,
        "pixelated": width <= PIXEL_ART,
        "expected": expected.map(boxes_of).unwrap_or(Value::Null),
    }))
}

/// The boxes an output or an expected value holds, as `[x1, y1, x2, y2, label]`; null
/// when it holds none.
pub(super) fn boxes_of(value: &Value) -> Value {
    let parsed = match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(inner) => parse_boxes(&inner),
            Err(_) => return Value::Null,
        },
        other => parse_boxes(other),
    };
    match parsed {
        Ok(boxes) if !boxes.is_empty() => boxes.iter().map(box_json).collect(),
        _ => Value::Null,
    }
}

fn box_json(rect: &LabelledRect) -> Value {
    let [x1, y1, x2, y2] = rect.bbox;
    json!([x1, y1, x2, y2, rect.label.clone().unwrap_or_default()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_picture(dir: &Path, name: &str, width: u32, height: u32) {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        picture.save(dir.join(name)).unwrap();
    }

    #[test]
    fn pictures_are_found_scaled_and_carry_their_boxes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        write_picture(&dir.path().join("photos"), "wide.jpg", 1000, 500);
        write_picture(dir.path(), "digit.png", 28, 28);
        let set = dir.path().join("set.yaml");

        let vars = json!({"caption": "not a path", "image": "photos/wide.jpg"});
        let expected = json!([{"label": "person", "box": [10, 20, 110, 220]}]);
        let picture = case_picture(&set, vars.as_object().unwrap(), Some(&expected)).unwrap();
        assert!(
            picture["src"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,")
        );
        // Boxes are in the original's pixels, so the size is the original's.
        assert_eq!(
            (picture["width"].as_u64(), picture["height"].as_u64()),
            (Some(1000), Some(500))
        );
        assert_eq!(
            picture["expected"],
            json!([[10.0, 20.0, 110.0, 220.0, "person"]])
        );
        let encoded = picture["src"].as_str().unwrap().split(',').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let small = image::load_from_memory(&bytes).unwrap();
        assert_eq!((small.width(), small.height()), (MAX_WIDTH, 240));

        let vars = json!({"image": "digit.png"});
        let digit = case_picture(&set, vars.as_object().unwrap(), Some(&json!("7"))).unwrap();
        assert!(
            digit["src"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert_eq!(digit["pixelated"], json!(true));
        assert_eq!(digit["expected"], Value::Null);

        let missing = json!({"image": "photos/gone.jpg"});
        assert!(case_picture(&set, missing.as_object().unwrap(), None).is_none());
    }

    #[test]
    fn outputs_with_boxes_are_read_and_others_are_not() {
        let found = json!(r#"{"objects":[{"label":"person","confidence":0.6,"box":[1,2,3,4]}]}"#);
        assert_eq!(boxes_of(&found), json!([[1.0, 2.0, 3.0, 4.0, "person"]]));
        assert_eq!(boxes_of(&json!("Paris")), Value::Null);
        assert_eq!(boxes_of(&json!(r#"{"objects": []}"#)), Value::Null);
    }
}
