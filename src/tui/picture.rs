//! Pictures of vision cases in the terminal: the case's image with its expected boxes
//! (green) and a column's found boxes (red), drawn with the best graphics protocol the
//! terminal answers to (kitty, sixel, iTerm2), else with coloured half blocks
//! (`ratatui-image`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::{DynamicImage, Rgb, RgbImage};
use promptlab::score::detection::{LabelledRect, parse_boxes};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

const EXPECTED: Rgb<u8> = Rgb([40, 200, 60]);
const FOUND: Rgb<u8> = Rgb([230, 40, 40]);

/// A picture on screen: its image, a hash of the boxes drawn on it, where it is.
type PictureKey = (PathBuf, u64, Rect);

/// The terminal's graphics protocol and the pictures made for it.
pub struct Pictures {
    picker: Picker,
    /// By (image, boxes, area): an encoded picture is reused while the screen stays, so
    /// kitty and sixel terminals are not sent it again.
    made: RefCell<HashMap<PictureKey, Option<Protocol>>>,
}

impl Default for Pictures {
    /// Half blocks, which every terminal shows (and tests can read).
    fn default() -> Pictures {
        // A half block is one pixel wide and two high: with that as the "font", a picture
        // made at the size shown is drawn pixel for pixel.
        let mut picker = Picker::from_fontsize((1, 2));
        picker.set_protocol_type(ProtocolType::Halfblocks);
        Pictures::with_picker(picker)
    }
}

impl Pictures {
    pub fn with_picker(picker: Picker) -> Pictures {
        if picker.protocol_type() == ProtocolType::Halfblocks && picker.font_size() != (1, 2) {
            return Pictures::default();
        }
        Pictures {
            picker,
            made: RefCell::new(HashMap::new()),
        }
    }

    /// The terminal's graphics protocol: asked of terminals known to have one (kitty,
    /// WezTerm, iTerm2, Ghostty, foot, Konsole...), half blocks elsewhere.
    /// `PROMPTLAB_PICTURES=query` asks any terminal, `halfblocks` never asks. Asking a
    /// terminal that does not answer leaves a reader on stdin that takes the first keys
    /// pressed (tmux does that), hence not by default.
    pub fn detect() -> Pictures {
        let setting = std::env::var("PROMPTLAB_PICTURES").unwrap_or_default();
        let ask = match setting.as_str() {
            "query" => true,
            "halfblocks" => false,
            _ => std::env::var_os("TMUX").is_none() && graphics_terminal(),
        };
        if !ask {
            return Pictures::default();
        }
        match Picker::from_query_stdio() {
            Ok(picker) => Pictures::with_picker(picker),
            Err(_) => Pictures::default(),
        }
    }

    pub fn protocol_name(&self) -> &'static str {
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => "half blocks",
            ProtocolType::Sixel => "sixel",
            ProtocolType::Kitty => "kitty",
            ProtocolType::Iterm2 => "iTerm2",
        }
    }

    /// Draws `path` with the `expected` boxes and the boxes `found` holds (an output's
    /// JSON text) into `area`; false when the image does not load.
    pub fn draw(
        &self,
        path: &Path,
        expected: Option<&serde_json::Value>,
        found: Option<&str>,
        area: Rect,
        buf: &mut Buffer,
    ) -> bool {
        if area.width == 0 || area.height == 0 {
            return true;
        }
        let boxes_hash = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            expected.map(|e| e.to_string()).hash(&mut hasher);
            found.hash(&mut hasher);
            hasher.finish()
        };
        let key = (path.to_path_buf(), boxes_hash, area);
        let mut made = self.made.borrow_mut();
        if made.len() > 64 {
            made.clear();
        }
        let protocol = made.entry(key).or_insert_with(|| {
            let boxes = |value: &serde_json::Value| parse_boxes(value).unwrap_or_default();
            let expected = expected.map(boxes).unwrap_or_default();
            let found = found
                .map(|output| boxes(&serde_json::Value::String(output.to_string())))
                .unwrap_or_default();
            // Drawn at the resolution the terminal shows, so a box is never thinner than
            // a pixel of it.
            let (font_width, font_height) = self.picker.font_size();
            let shown = (
                u32::from(area.width) * u32::from(font_width),
                u32::from(area.height) * u32::from(font_height),
            );
            let picture = annotated(path, &expected, &found, shown)?;
            self.picker
                .new_protocol(DynamicImage::ImageRgb8(picture), area, Resize::Fit(None))
                .ok()
        });
        match protocol {
            Some(protocol) => {
                Image::new(protocol).render(area, buf);
                true
            }
            None => false,
        }
    }
}

/// Whether the environment names a terminal with a graphics protocol.
fn graphics_terminal() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default().to_lowercase();
    let term = var("TERM");
    let program = var("TERM_PROGRAM");
    std::env::var_os("KITTY_WINDOW_ID").is_some()
        || std::env::var_os("WEZTERM_EXECUTABLE").is_some()
        || std::env::var_os("KONSOLE_VERSION").is_some()
        || ["kitty", "foot", "mlterm", "ghostty", "contour", "wezterm"]
            .iter()
            .any(|t| term.contains(t))
        || ["wezterm", "iterm.app", "ghostty", "rio", "mintty"]
            .iter()
            .any(|p| program.contains(p))
}

/// The image at `path` scaled to fit `within` (width, height) pixels, keeping its
/// proportions, with box outlines drawn on it at that size.
pub fn annotated(
    path: &Path,
    expected: &[LabelledRect],
    found: &[LabelledRect],
    within: (u32, u32),
) -> Option<RgbImage> {
    let photo = image::open(path).ok()?.to_rgb8();
    let (width, height) = photo.dimensions();
    if width == 0 || height == 0 || within.0 == 0 || within.1 == 0 {
        return None;
    }
    let scale = (within.0 as f64 / width as f64).min(within.1 as f64 / height as f64);
    let size = |v: u32| ((v as f64 * scale).round() as u32).max(1);
    // Enlarged pixels stay sharp (MNIST digits); shrunk photos are averaged.
    let filter = match scale > 1.0 {
        true => image::imageops::FilterType::Nearest,
        false => image::imageops::FilterType::Triangle,
    };
    let mut picture = image::imageops::resize(&photo, size(width), size(height), filter);
    let thickness = (picture.width().max(picture.height()) / 150).max(1);
    for (boxes, colour) in [(expected, EXPECTED), (found, FOUND)] {
        for rect in boxes {
            outline(
                &mut picture,
                rect.bbox.map(|v| v * scale),
                thickness,
                colour,
            );
        }
    }
    Some(picture)
}

/// A rectangle's outline, `thickness` pixels inside its edges, clipped to the image.
fn outline(picture: &mut RgbImage, bbox: [f64; 4], thickness: u32, colour: Rgb<u8>) {
    let (width, height) = picture.dimensions();
    if width == 0 || height == 0 {
        return;
    }
    let clamp = |v: f64, max: u32| (v.max(0.0) as u32).min(max - 1);
    let [x1, y1, x2, y2] = bbox;
    let (x1, x2) = (clamp(x1.min(x2), width), clamp(x1.max(x2), width));
    let (y1, y2) = (clamp(y1.min(y2), height), clamp(y1.max(y2), height));
    for t in 0..thickness {
        for x in x1..=x2 {
            for y in [y1.saturating_add(t).min(y2), y2.saturating_sub(t).max(y1)] {
                picture.put_pixel(x, y, colour);
            }
        }
        for y in y1..=y2 {
            for x in [x1.saturating_add(t).min(x2), x2.saturating_sub(t).max(x1)] {
                picture.put_pixel(x, y, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(bbox: [f64; 4]) -> LabelledRect {
        LabelledRect {
            label: Some("x".into()),
            confidence: 1.0,
            bbox,
        }
    }

    #[test]
    fn boxes_are_outlined_in_their_colours_at_the_shown_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        RgbImage::from_pixel(200, 100, Rgb([0, 0, 0]))
            .save(&path)
            .unwrap();
        let expected = [rect([10.0, 10.0, 50.0, 40.0])];
        let found = [rect([100.0, 20.0, 400.0, 90.0])];
        let picture = annotated(&path, &expected, &found, (200, 200)).unwrap();
        assert_eq!(picture.dimensions(), (200, 100));
        assert_eq!(*picture.get_pixel(10, 25), EXPECTED);
        assert_eq!(*picture.get_pixel(30, 40), EXPECTED);
        assert_eq!(*picture.get_pixel(30, 25), Rgb([0, 0, 0]), "inside stays");
        // A box past the edge is clipped, not a panic.
        assert_eq!(*picture.get_pixel(199, 50), FOUND);
        assert_eq!(*picture.get_pixel(150, 20), FOUND);
        // Shrunk to 20 pixels wide, the box is still a line of whole pixels.
        let small = annotated(&path, &expected, &[], (20, 40)).unwrap();
        assert_eq!(small.dimensions(), (20, 10));
        assert_eq!(*small.get_pixel(1, 2), EXPECTED);
        // A 28-pixel digit is enlarged, its box with it.
        let digit = dir.path().join("d.png");
        RgbImage::from_pixel(28, 28, Rgb([0, 0, 0]))
            .save(&digit)
            .unwrap();
        let big = annotated(&digit, &[rect([2.0, 2.0, 10.0, 10.0])], &[], (224, 300)).unwrap();
        assert_eq!(big.dimensions(), (224, 224));
        assert_eq!(*big.get_pixel(16, 40), EXPECTED);
        assert!(annotated(&dir.path().join("missing.png"), &[], &[], (10, 10)).is_none());
    }

    #[test]
    fn half_blocks_draw_the_picture_into_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        RgbImage::from_pixel(80, 40, Rgb([250, 250, 250]))
            .save(&path)
            .unwrap();
        let pictures = Pictures::default();
        let area = Rect::new(0, 0, 20, 6);
        let mut buf = Buffer::empty(area);
        let expected = serde_json::json!([{"label": "a", "box": [0, 0, 79, 39]}]);
        assert!(pictures.draw(&path, Some(&expected), None, area, &mut buf));
        // 80×40 pixels fit 20 columns as 20×10 half-block pixels: 5 rows of cells.
        let painted = buf
            .content()
            .iter()
            .filter(|c| {
                c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset
            })
            .count();
        assert_eq!(painted, 100);
        // The box around the whole picture shows in the border cells' colours.
        let green = ratatui::style::Color::Rgb(EXPECTED.0[0], EXPECTED.0[1], EXPECTED.0[2]);
        let edged = buf
            .content()
            .iter()
            .filter(|c| c.fg == green || c.bg == green)
            .count();
        assert!(edged >= 10, "{edged} cells show the box");
        assert!(!pictures.draw(&dir.path().join("gone.png"), None, None, area, &mut buf));
    }
}
