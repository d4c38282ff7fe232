//! Image classification datasets: MNIST and Fashion-MNIST in IDX format (plain or
//! gzipped) and scikit-learn's 8×8 digits (CSV). Pixels become `f32` in 0..=1.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::VisionError;

/// Which dataset, and where its files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    /// scikit-learn's 1,797 8×8 digits.
    Digits,
}

impl DatasetKind {
    pub fn parse(name: &str) -> Option<DatasetKind> {
        match name {
            "mnist" => Some(DatasetKind::Mnist),
            "fashion-mnist" | "fashion" => Some(DatasetKind::FashionMnist),
            "digits" | "digits8x8" => Some(DatasetKind::Digits),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Digits => "digits",
        }
    }

    pub fn class_names(self) -> Vec<String> {
        match self {
            DatasetKind::FashionMnist => [
                "t-shirt",
                "trouser",
                "pullover",
                "dress",
                "coat",
                "sandal",
                "shirt",
                "sneaker",
                "bag",
                "ankle-boot",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            _ => (0..10).map(|d| d.to_string()).collect(),
        }
    }

    /// The folder scripts/fetch-datasets.sh fills: `$PROMPTLAB_DATASETS` or
    /// `~/.cache/promptlab/datasets`, then the dataset's name.
    pub fn default_dir(self) -> PathBuf {
        let root = std::env::var_os("PROMPTLAB_DATASETS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/promptlab/datasets")
            });
        root.join(self.name())
    }
}

/// Images of one size with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub height: usize,
    pub width: usize,
    /// `len * height * width` pixels in 0..=1, row-major, image after image.
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, index: usize) -> &[f32] {
        let size = self.height * self.width;
        &self.pixels[index * size..(index + 1) * size]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.height * self.width);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            height: self.height,
            width: self.width,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }
}

/// The training and test splits of a dataset found in `dir`.
pub fn load(kind: DatasetKind, dir: &Path) -> Result<(Dataset, Dataset), VisionError> {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let split = |images: &str, labels: &str| -> Result<Dataset, VisionError> {
                let images_path = find(dir, images)?;
                let labels_path = find(dir, labels)?;
                let (count, height, width, pixels) = read_idx_images(&images_path)?;
                let labels = read_idx_labels(&labels_path)?;
                if labels.len() != count {
                    return Err(VisionError::file(
                        &labels_path,
                        format!(
                            "{} labels for {count} images in {}",
                            labels.len(),
                            images_path.display()
                        ),
                    ));
                }
                check_labels(&labels_path, &labels, 10)?;
                Ok(Dataset {
                    height,
                    width,
                    pixels,
                    labels,
                    classes: kind.class_names(),
                })
            };
            Ok((
                split("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
                split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
            ))
        }
        DatasetKind::Digits => {
            let path = find(dir, "digits.csv")?;
            let all = read_digits_csv(&path)?;
            // scikit-learn's examples hold out the last part; a fixed 80/20 cut keeps
            // results comparable between runs.
            let cut = all.len() * 4 / 5;
            let train: Vec<usize> = (0..cut).collect();
            let test: Vec<usize> = (cut..all.len()).collect();
            Ok((all.subset(&train), all.subset(&test)))
        }
    }
}

/// `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, VisionError> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(VisionError::file(
        dir.join(name),
        "not found (nor with .gz); run scripts/fetch-datasets.sh or pass --data DIR",
    ))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, VisionError> {
    let raw =
        std::fs::read(path).map_err(|e| VisionError::file(path, format!("cannot read: {e}")))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| VisionError::file(path, format!("not a valid gzip file: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// IDX images: magic 0x00000803, count, rows, columns, then u8 pixels.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<f32>), VisionError> {
    let bytes = read_bytes(path)?;
    if bytes.len() < 16 || be_u32(&bytes, 0) != 0x0803 {
        return Err(VisionError::file(
            path,
            "not an IDX image file (expected magic 0x00000803 and a 16-byte header)",
        ));
    }
    let count = be_u32(&bytes, 4) as usize;
    let height = be_u32(&bytes, 8) as usize;
    let width = be_u32(&bytes, 12) as usize;
    let expected = count
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
        .and_then(|n| n.checked_add(16));
    if expected != Some(bytes.len()) {
        return Err(VisionError::file(
            path,
            format!(
                "truncated or padded: the header announces {count} images of {height}×{width} ({} bytes) but the file has {} bytes",
                expected.map_or("too many".to_string(), |n| n.to_string()),
                bytes.len()
            ),
        ));
    }
    let pixels = bytes[16..].iter().map(|&b| f32::from(b) / 255.0).collect();
    Ok((count, height, width, pixels))
}

/// IDX labels: magic 0x00000801, count, then u8 labels.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, VisionError> {
    let bytes = read_bytes(path)?;
    if bytes.len() < 8 || be_u32(&bytes, 0) != 0x0801 {
        return Err(VisionError::file(
            path,
            "not an IDX label file (expected magic 0x00000801 and an 8-byte header)",
        ));
    }
    let count = be_u32(&bytes, 4) as usize;
    if bytes.len() != count + 8 {
        return Err(VisionError::file(
            path,
            format!(
                "the header announces {count} labels but the file holds {}",
                bytes.len().saturating_sub(8)
            ),
        ));
    }
    Ok(bytes[8..].to_vec())
}

fn check_labels(path: &Path, labels: &[u8], classes: u8) -> Result<(), VisionError> {
    match labels.iter().position(|&l| l >= classes) {
        Some(i) => Err(VisionError::file(
            path,
            format!("label {} at index {i} is outside 0..{classes}", labels[i]),
        )),
        None => Ok(()),
    }
}

/// scikit-learn's `digits.csv(.gz)`: 64 pixel values 0..=16, then the label, per line.
pub fn read_digits_csv(path: &Path) -> Result<Dataset, VisionError> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|_| VisionError::file(path, "not UTF-8 text"))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let values: Result<Vec<f32>, _> =
            line.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let values = values.map_err(|_| {
            VisionError::file(
                path,
                format!(
                    "line {}: expected 65 numbers separated by commas",
                    number + 1
                ),
            )
        })?;
        if values.len() != 65 {
            return Err(VisionError::file(
                path,
                format!(
                    "line {}: expected 65 values (64 pixels and a label), found {}",
                    number + 1,
                    values.len()
                ),
            ));
        }
        pixels.extend(values[..64].iter().map(|v| v / 16.0));
        let label = values[64];
        if !(0.0..10.0).contains(&label) || label.fract() != 0.0 {
            return Err(VisionError::file(
                path,
                format!("line {}: label {label} is not a digit", number + 1),
            ));
        }
        labels.push(label as u8);
    }
    Ok(Dataset {
        height: 8,
        width: 8,
        pixels,
        labels,
        classes: DatasetKind::Digits.class_names(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(count: u32, h: u32, w: u32, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 8, 3];
        for n in [count, h, w] {
            bytes.extend(n.to_be_bytes());
        }
        bytes.extend(data);
        bytes
    }

    #[test]
    fn idx_files_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("imgs");
        std::fs::write(&images, idx_images(2, 1, 2, &[0, 255, 51, 102])).unwrap();
        let (count, h, w, pixels) = read_idx_images(&images).unwrap();
        assert_eq!((count, h, w), (2, 1, 2));
        assert_eq!(pixels, [0.0, 1.0, 0.2, 0.4]);

        std::fs::write(&images, idx_images(3, 1, 2, &[0, 255, 51, 102])).unwrap();
        let err = read_idx_images(&images).unwrap_err().to_string();
        assert!(err.contains("imgs") && err.contains("truncated"), "{err}");
        std::fs::write(&images, b"GIF89a not idx at all").unwrap();
        let err = read_idx_images(&images).unwrap_err().to_string();
        assert!(err.contains("0x00000803"), "{err}");

        let labels = dir.path().join("labels.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[0, 0, 8, 1, 0, 0, 0, 2, 7, 3]).unwrap();
        std::fs::write(&labels, gz.finish().unwrap()).unwrap();
        assert_eq!(read_idx_labels(&labels).unwrap(), [7, 3]);
    }

    #[test]
    fn digits_csv_rows_become_8x8_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digits.csv");
        let row: Vec<String> = (0..64)
            .map(|i| (i % 17).to_string())
            .chain(["7".into()])
            .collect();
        std::fs::write(&path, format!("{}\n", row.join(","))).unwrap();
        let set = read_digits_csv(&path).unwrap();
        assert_eq!((set.len(), set.height, set.width), (1, 8, 8));
        assert_eq!(set.labels, [7]);
        assert_eq!(set.image(0)[16], 1.0);
        std::fs::write(&path, "1,2,3\n").unwrap();
        let err = read_digits_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("65 values"), "{err}");
    }
}
