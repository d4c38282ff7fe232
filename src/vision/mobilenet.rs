//! MobileNetV2 (Sandler et al., 2018) as torchvision builds it, written in the digit
//! CNN's layers, so the same network code runs it, freezes it and fine-tunes it. Its
//! ImageNet weights come from torchvision's `mobilenet_v2-b0353104.pth` (converted to
//! safetensors by `scripts/fetch-vision.sh`); the tests check its logits against
//! torchvision's on fixed inputs (`tests/fixtures/mobilenet/`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::VisionError;
use super::cnn::Layer;
use super::network::Network;

pub const NAME: &str = "mobilenet_v2";

/// ImageNet's per-channel pixel statistics, which the pretrained weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's inverted-residual settings: expansion, output channels, repeats, stride.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNetV2's feature extractor as a layer list (up to the global average pool, 1,280
/// features), with where each of torchvision's modules landed.
pub struct Backbone {
    pub layers: Vec<Layer>,
    /// The layer each of torchvision's `features.N` blocks starts at; its last entry is
    /// the number of layers.
    pub blocks: Vec<usize>,
    /// torchvision's module name (`features.3.conv.1.0`) of each layer that has weights.
    torch_names: Vec<(usize, String)>,
}

impl Backbone {
    /// How many of the first layers to freeze so that the last `trainable` of the 19
    /// blocks (`features.0` … `features.18`) train.
    pub fn frozen_layers(&self, trainable: usize) -> usize {
        let blocks = self.blocks.len() - 1;
        self.blocks[blocks.saturating_sub(trainable)]
    }

    /// The number of blocks (19).
    pub fn block_count(&self) -> usize {
        self.blocks.len() - 1
    }

    /// Copies torchvision's weights from `path` into `network`, built from
    /// [`Backbone::layers`] plus a head; with `classifier`, the 1,000-class ImageNet layer
    /// too (the network must then end in 1,000 classes right after the backbone's
    /// dropout).
    pub fn load_weights(
        &self,
        network: &mut Network,
        path: &Path,
        classifier: bool,
    ) -> Result<(), VisionError> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| VisionError::file(path, format!("not a safetensors weights file: {e}")))?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (layer, torch) in &self.torch_names {
            match self.layers[*layer] {
                Layer::BatchNorm => {
                    for what in ["weight", "bias", "running_mean", "running_var"] {
                        pairs.push((format!("{torch}.{what}"), format!("l{layer}.{what}")));
                    }
                }
                _ => pairs.push((format!("{torch}.weight"), format!("l{layer}.weight"))),
            }
        }
        if classifier {
            // The classes' dense layer comes right after the backbone's layers.
            let dense = self.layers.len();
            for what in ["weight", "bias"] {
                pairs.push((format!("classifier.1.{what}"), format!("l{dense}.{what}")));
            }
        }
        for (torch, ours) in pairs {
            let tensor = tensors.get(&torch).ok_or_else(|| {
                VisionError::file(
                    path,
                    format!("not MobileNetV2 weights: no tensor `{torch}`"),
                )
            })?;
            let values: Vec<f32> = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            network
                .set(&ours, &values)
                .map_err(|e| VisionError::file(path, format!("`{torch}`: {e}")))?;
        }
        Ok(())
    }
}

/// The backbone, ending in the global average pool and the classifier's dropout (0.2).
pub fn mobilenet_v2() -> Backbone {
    let mut layers = Vec::new();
    let mut blocks = Vec::new();
    let mut torch_names = Vec::new();
    let pointwise = |channels| Layer::Conv {
        channels,
        kernel: 1,
        padding: 0,
        stride: 1,
        bias: false,
    };
    blocks.push(0);
    conv_bn_relu6(
        &mut layers,
        &mut torch_names,
        Layer::Conv {
            channels: 32,
            kernel: 3,
            padding: 1,
            stride: 2,
            bias: false,
        },
        "features.0",
    );
    let mut channels = 32;
    let mut block = 1;
    for (expansion, out, repeats, first_stride) in SETTINGS {
        for repeat in 0..repeats {
            let stride = if repeat == 0 { first_stride } else { 1 };
            let start = layers.len();
            blocks.push(start);
            let prefix = format!("features.{block}.conv");
            let mut part = 0;
            if expansion != 1 {
                let name = format!("{prefix}.{part}");
                conv_bn_relu6(
                    &mut layers,
                    &mut torch_names,
                    pointwise(channels * expansion),
                    &name,
                );
                part += 1;
            }
            let depthwise = Layer::Depthwise {
                kernel: 3,
                padding: 1,
                stride,
            };
            conv_bn_relu6(
                &mut layers,
                &mut torch_names,
                depthwise,
                &format!("{prefix}.{part}"),
            );
            torch_names.push((layers.len(), format!("{prefix}.{}", part + 1)));
            layers.push(pointwise(out));
            torch_names.push((layers.len(), format!("{prefix}.{}", part + 2)));
            layers.push(Layer::BatchNorm);
            if stride == 1 && channels == out {
                layers.push(Layer::Residual {
                    span: layers.len() - start,
                });
            }
            channels = out;
            block += 1;
        }
    }
    blocks.push(layers.len());
    conv_bn_relu6(
        &mut layers,
        &mut torch_names,
        pointwise(1280),
        "features.18",
    );
    layers.push(Layer::GlobalAveragePool);
    blocks.push(layers.len());
    layers.push(Layer::Dropout { rate: 0.2 });
    Backbone {
        layers,
        blocks,
        torch_names,
    }
}

/// torchvision's `Conv2dNormActivation`: a convolution, batch norm and ReLU6, named
/// `{name}.0` and `{name}.1`.
fn conv_bn_relu6(
    layers: &mut Vec<Layer>,
    names: &mut Vec<(usize, String)>,
    conv: Layer,
    name: &str,
) {
    names.push((layers.len(), format!("{name}.0")));
    layers.push(conv);
    names.push((layers.len(), format!("{name}.1")));
    layers.push(Layer::BatchNorm);
    layers.push(Layer::Relu6);
}

/// Where `scripts/fetch-vision.sh` puts the converted ImageNet weights.
pub fn default_weights() -> PathBuf {
    super::detect::default_cache()
        .join("models")
        .join("mobilenet_v2-imagenet.safetensors")
}

/// A photo as ImageNet models are evaluated on it (torchvision's `Resize(256)`,
/// `CenterCrop(224)`, scaled to `size`): the shorter side resized to `size · 256/224`
/// (bilinear), the centre `size`×`size` cut out, normalised with ImageNet's statistics.
pub fn photo_input(image: &image::DynamicImage, size: usize) -> Vec<f32> {
    let rgb = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    let short = (size as f32 * 256.0 / 224.0).round();
    let scale = short / w.min(h).max(1) as f32;
    let (nw, nh) = (
        ((w as f32 * scale).round() as u32).max(size as u32),
        ((h as f32 * scale).round() as u32).max(size as u32),
    );
    let resized = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw as usize - size) / 2, (nh as usize - size) / 2);
    let plane = size * size;
    let mut pixels = vec![0f32; 3 * plane];
    for y in 0..size {
        for x in 0..size {
            let p = resized.get_pixel((x0 + x) as u32, (y0 + y) as u32);
            for c in 0..3 {
                pixels[c * plane + y * size + x] =
                    (f32::from(p[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
    }
    pixels
}

/// The 1,000 ImageNet class names, from `imagenet-classes.json` beside the weights.
pub fn imagenet_classes(weights: &Path) -> Result<Vec<String>, VisionError> {
    let path = weights.with_file_name("imagenet-classes.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| VisionError::file(&path, e.to_string()))?;
    let names: Vec<String> = serde_json::from_str(&text)
        .map_err(|e| VisionError::file(&path, format!("expected a list of class names: {e}")))?;
    if names.len() != 1000 {
        return Err(VisionError::file(
            &path,
            format!("{} class names, expected 1000", names.len()),
        ));
    }
    Ok(names)
}

/// An image (`[channels, height, width]`, 1 or 3 channels) resized to `size`×`size`
/// (bilinear, pixel centres aligned as PyTorch's `align_corners=False`), grey repeated
/// over the three channels: `[3, size, size]`, values as they were (not normalised).
pub fn resize_to_rgb(
    pixels: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    size: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * size * size);
    let scale_y = height as f32 / size as f32;
    let scale_x = width as f32 / size as f32;
    let source = |y: usize, scale: f32, limit: usize| {
        let at = ((y as f32 + 0.5) * scale - 0.5).max(0.0);
        let low = (at.floor() as usize).min(limit - 1);
        let high = (low + 1).min(limit - 1);
        (low, high, at - low as f32)
    };
    for c in 0..3 {
        let plane = &pixels[(c % channels) * height * width..][..height * width];
        for y in 0..size {
            let (y0, y1, fy) = source(y, scale_y, height);
            for x in 0..size {
                let (x0, x1, fx) = source(x, scale_x, width);
                let top = plane[y0 * width + x0] * (1.0 - fx) + plane[y0 * width + x1] * fx;
                let bottom = plane[y1 * width + x0] * (1.0 - fx) + plane[y1 * width + x1] * fx;
                let value = top * (1.0 - fy) + bottom * fy;
                out.push(value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobilenet/logits.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn floats(value: &serde_json::Value) -> Vec<f32> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    fn imagenet_network(size: usize) -> Network {
        let weights = default_weights();
        assert!(
            weights.is_file(),
            "{} is missing: run scripts/fetch-vision.sh",
            weights.display()
        );
        let backbone = mobilenet_v2();
        let (mut network, _) = Network::new(&backbone.layers, [3, size, size], 1000, 0).unwrap();
        backbone.load_weights(&mut network, &weights, true).unwrap();
        network
    }

    #[test]
    fn logits_match_torchvision() {
        let fixture = fixture();
        let size = fixture["size"].as_u64().unwrap() as usize;
        let input = floats(&fixture["input"]);
        let expected = floats(&fixture["logits"]);
        let mut network = imagenet_network(size);
        let logits = network.forward(&input, false).to_vec();
        let worst = logits
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "largest logit difference {worst}");
        // The backbone's features alone, as feature extraction uses them.
        let backbone = mobilenet_v2();
        let features = network.features(&input, backbone.blocks[backbone.block_count()]);
        let expected = floats(&fixture["features"]);
        assert_eq!(features.len(), 1280);
        let worst = features
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "largest feature difference {worst}");
    }

    /// The shipped photos, preprocessed here, get torchvision's classes: each top class is
    /// in the other's top five, all but at most one top class is the same, and most of the
    /// top fives are shared (the resizing filters differ slightly, which can swap two
    /// close classes).
    #[test]
    fn photos_get_torchvision_imagenet_classes() {
        let fixture = fixture();
        let photos = crate::vision::detect::default_cache().join("photos");
        let classes = imagenet_classes(&default_weights()).unwrap();
        let mut network = imagenet_network(224);
        let expected = fixture["photos_top5"].as_object().unwrap();
        let (mut shared, mut same_top) = (0, 0);
        for (name, top5) in expected {
            let top5: Vec<usize> = top5
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let image = image::open(photos.join(name)).unwrap();
            let logits = network.forward(&photo_input(&image, 224), false).to_vec();
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
            eprintln!("{name}: ours {:?} torchvision {:?}", &order[..5], top5);
            assert!(
                top5.contains(&order[0]) && order[..5].contains(&top5[0]),
                "{name}: ours {}, torchvision's {}",
                classes[order[0]],
                classes[top5[0]]
            );
            same_top += usize::from(order[0] == top5[0]);
            shared += order[..5].iter().filter(|c| top5.contains(c)).count();
        }
        assert!(
            shared * 10 >= expected.len() * 5 * 8,
            "{shared} of the top fives shared"
        );
        assert!(
            same_top + 1 >= expected.len(),
            "{same_top} top classes the same"
        );
    }
}
