//! Turning any photo or scan of a digit into what the CNN was trained on: grayscale, a
//! light digit on a dark background, cropped to its content, scaled into a 20×20 box and
//! centred by its centre of mass in a 28×28 frame (MNIST's own preparation; other sizes
//! scale the same proportions).

use std::path::Path;

use image::imageops::FilterType;
use image::{GrayImage, Luma};

use super::VisionError;

/// Reads a photo (PNG or JPEG), refusing what is not one whole image: a folder, a file
/// of another kind, or a JPEG cut short (which the decoder would otherwise fill with grey
/// and pass on as a photo with nothing in it). Every vision path opens images here.
pub fn open_image(path: &Path) -> Result<image::DynamicImage, VisionError> {
    if path.is_dir() {
        return Err(VisionError::file(
            path,
            "is a folder; expected an image file (PNG or JPEG)",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| VisionError::file(path, format!("cannot open: {e}")))?;
    if bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_whole(&bytes) {
        return Err(VisionError::file(
            path,
            "the JPEG is cut short (no end-of-image marker); the file may be truncated",
        ));
    }
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::file(path, format!("cannot read: {e}")))?
        .decode()
        .map_err(|e| {
            VisionError::file(
                path,
                format!("not a readable image (PNG or JPEG expected): {e}"),
            )
        })
}

/// Whether a JPEG ends with its end-of-image marker (FF D9), allowing for the padding
/// some writers add after it.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Pixels in 0..=1, `size`×`size`, ready for [`super::train::DigitClassifier::predict`].
pub fn digit_from_file(path: &Path, size: usize) -> Result<Vec<f32>, VisionError> {
    let image = open_image(path)?;
    Ok(prepare_digit(&image.to_luma8(), size))
}

pub fn prepare_digit(gray: &GrayImage, size: usize) -> Vec<f32> {
    let (w, h) = gray.dimensions();
    let mut pixels: Vec<f32> = gray.pixels().map(|p| f32::from(p[0]) / 255.0).collect();
    // Ink is whatever differs from the border: invert dark-on-light scans.
    let border: Vec<f32> = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
        .map(|(x, y)| pixels[(y * w + x) as usize])
        .collect();
    let background = border.iter().sum::<f32>() / border.len().max(1) as f32;
    if background > 0.5 {
        for p in &mut pixels {
            *p = 1.0 - *p;
        }
    }
    let floor = if background > 0.5 {
        1.0 - background
    } else {
        background
    };
    for p in &mut pixels {
        *p = ((*p - floor) / (1.0 - floor).max(1e-6)).clamp(0.0, 1.0);
    }
    // Crop to the ink.
    let ink = |x: u32, y: u32| pixels[(y * w + x) as usize] > 0.2;
    let xs: Vec<u32> = (0..w).filter(|&x| (0..h).any(|y| ink(x, y))).collect();
    let ys: Vec<u32> = (0..h).filter(|&y| (0..w).any(|x| ink(x, y))).collect();
    let (Some(&x0), Some(&x1), Some(&y0), Some(&y1)) =
        (xs.first(), xs.last(), ys.first(), ys.last())
    else {
        return vec![0.0; size * size];
    };
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let cropped = GrayImage::from_fn(cw, ch, |x, y| {
        Luma([(pixels[((y0 + y) * w + x0 + x) as usize] * 255.0).round() as u8])
    });
    // Longest side to 20/28 of the frame, keeping the aspect ratio.
    let inner = ((size as f32) * 20.0 / 28.0).round().max(1.0);
    let scale = inner / cw.max(ch) as f32;
    let (nw, nh) = (
        ((cw as f32 * scale).round() as u32).max(1),
        ((ch as f32 * scale).round() as u32).max(1),
    );
    let scaled = image::imageops::resize(&cropped, nw, nh, FilterType::Triangle);
    // Centre of mass to the frame's centre.
    let (mut mass, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, p) in scaled.enumerate_pixels() {
        let v = f32::from(p[0]);
        mass += v;
        mx += v * x as f32;
        my += v * y as f32;
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (nw as f32 / 2.0, nh as f32 / 2.0)
    };
    let centre = (size as f32 - 1.0) / 2.0;
    let (ox, oy) = ((centre - cx).round() as i64, (centre - cy).round() as i64);
    let mut out = vec![0.0; size * size];
    for (x, y, p) in scaled.enumerate_pixels() {
        let (tx, ty) = (x as i64 + ox, y as i64 + oy);
        if (0..size as i64).contains(&tx) && (0..size as i64).contains(&ty) {
            out[ty as usize * size + tx as usize] = f32::from(p[0]) / 255.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: a folder, and a JPEG cut short, are errors naming the file, not a
    /// photo with nothing in it.
    #[test]
    fn issue_20_folders_and_truncated_jpegs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_image(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("is a folder") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );

        let photo = image::RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 2) as u8, 90])
        });
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(photo)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let whole = dir.path().join("whole.jpg");
        std::fs::write(&whole, &jpeg).unwrap();
        assert_eq!(open_image(&whole).unwrap().width(), 160);
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
        let err = open_image(&cut).unwrap_err().to_string();
        assert!(
            err.contains("cut.jpg") && err.contains("cut short"),
            "{err}"
        );
    }

    #[test]
    fn a_dark_stroke_on_white_becomes_a_centred_light_digit() {
        // A vertical bar in the top-left corner of a white 60×40 image.
        let image = GrayImage::from_fn(60, 40, |x, y| {
            if (5..9).contains(&x) && (2..30).contains(&y) {
                Luma([0])
            } else {
                Luma([255])
            }
        });
        let digit = prepare_digit(&image, 28);
        assert_eq!(digit.len(), 784);
        let mass: f32 = digit.iter().sum();
        assert!(mass > 10.0);
        let (mut cx, mut cy) = (0.0, 0.0);
        for (i, p) in digit.iter().enumerate() {
            cx += p * (i % 28) as f32;
            cy += p * (i / 28) as f32;
        }
        assert!((cx / mass - 13.5).abs() < 1.0 && (cy / mass - 13.5).abs() < 1.0);
        // Corners stay background.
        assert_eq!(digit[0], 0.0);
        // 20 pixels tall, as MNIST.
        let rows = (0..28)
            .filter(|y| (0..28).any(|x| digit[y * 28 + x] > 0.5))
            .count();
        assert!((19..=21).contains(&rows), "{rows}");
    }

    #[test]
    fn files_that_are_not_images_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.png");
        std::fs::write(&path, b"this is not a png").unwrap();
        let err = digit_from_file(&path, 28).unwrap_err().to_string();
        assert!(
            err.contains("scan.png") && err.contains("not a readable image"),
            "{err}"
        );
        let err = digit_from_file(&dir.path().join("missing.png"), 28)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.png") && err.contains("cannot open"),
            "{err}"
        );
    }
}
