//! Zero-shot image classification with CLIP (candle-transformers' implementation, the
//! `tokenizers` crate): weights in the Hugging Face layout (`config.json`,
//! `model.safetensors`, `tokenizer.json`) from a local folder or the Hugging Face cache.
//! Each label becomes a sentence through a template, and the image's similarity to each
//! sentence becomes a probability.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use candle_transformers::models::clip::vision_model::ClipVisionConfig;
use candle_transformers::models::clip::{ClipConfig, ClipModel};
use image::DynamicImage;
use serde::Deserialize;

use super::VisionError;

/// The parts of Hugging Face's `config.json` for CLIP that the model needs.
#[derive(Debug, Deserialize)]
struct HfConfig {
    projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    logit_scale_init_value: f32,
    text_config: HfTextConfig,
    vision_config: HfVisionConfig,
}

fn default_logit_scale() -> f32 {
    2.6592
}

#[derive(Debug, Deserialize)]
struct HfTextConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
}

#[derive(Debug, Deserialize)]
struct HfVisionConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
    #[serde(default = "three")]
    num_channels: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}

fn three() -> usize {
    3
}

/// CLIP's image normalisation (OpenAI's training statistics, as published).
#[allow(clippy::excessive_precision)]
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

pub struct ZeroShot {
    model: ClipModel,
    tokenizer: tokenizers::Tokenizer,
    image_size: usize,
    max_tokens: usize,
    pad_id: u32,
}

/// The folder of a model: itself if it has a `config.json`, else a Hugging Face repo id
/// (`openai/clip-vit-base-patch32`) looked up in the local hub cache, offline.
pub fn resolve_model(spec: &str) -> Result<PathBuf, VisionError> {
    let path = Path::new(spec);
    if path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let cache = hf_hub::Cache::from_env();
    let repo = cache.model(spec.to_string());
    match (
        repo.get("config.json"),
        repo.get("model.safetensors"),
        repo.get("tokenizer.json"),
    ) {
        (Some(config), Some(_), Some(_)) => {
            Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
        }
        _ => Err(VisionError::Invalid(format!(
            "{spec}: not a folder with config.json, model.safetensors and tokenizer.json, and not in the Hugging Face cache ({}); download the model there first (for example `huggingface-cli download {spec}`)",
            cache.path().display()
        ))),
    }
}

impl ZeroShot {
    pub fn load(dir: &Path) -> Result<ZeroShot, VisionError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| VisionError::file(&config_path, format!("cannot read: {e}")))?;
        let hf: HfConfig = serde_json::from_str(&text)
            .map_err(|e| VisionError::file(&config_path, format!("not a CLIP config: {e}")))?;
        for act in [&hf.text_config.hidden_act, &hf.vision_config.hidden_act] {
            if act != "quick_gelu" {
                return Err(VisionError::file(
                    &config_path,
                    format!("activation `{act}` is not supported (CLIP uses quick_gelu)"),
                ));
            }
        }
        let config = ClipConfig {
            text_config: ClipTextConfig {
                vocab_size: hf.text_config.vocab_size,
                embed_dim: hf.text_config.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: hf.text_config.intermediate_size,
                max_position_embeddings: hf.text_config.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: hf.text_config.num_hidden_layers,
                num_attention_heads: hf.text_config.num_attention_heads,
                projection_dim: hf.projection_dim,
            },
            vision_config: ClipVisionConfig {
                embed_dim: hf.vision_config.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: hf.vision_config.intermediate_size,
                num_hidden_layers: hf.vision_config.num_hidden_layers,
                num_attention_heads: hf.vision_config.num_attention_heads,
                projection_dim: hf.projection_dim,
                num_channels: hf.vision_config.num_channels,
                image_size: hf.vision_config.image_size,
                patch_size: hf.vision_config.patch_size,
            },
            logit_scale_init_value: hf.logit_scale_init_value,
            image_size: hf.vision_config.image_size,
        };
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(VisionError::file(&weights, "not found"));
        }
        // SAFETY: the file is memory-mapped read-only; it must not change while loaded.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu)
        }
        .map_err(|e| VisionError::file(&weights, format!("not readable safetensors: {e}")))?;
        let model = ClipModel::new(vb, &config).map_err(|e| {
            VisionError::file(
                &weights,
                format!("the weights do not match {}: {e}", config_path.display()),
            )
        })?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            VisionError::file(&tokenizer_path, format!("not a tokenizers file: {e}"))
        })?;
        // CLIP pads with its end-of-text token.
        let pad_id = tokenizer
            .token_to_id("<|endoftext|>")
            .ok_or_else(|| VisionError::file(&tokenizer_path, "no <|endoftext|> token"))?;
        Ok(ZeroShot {
            model,
            tokenizer,
            image_size: hf.vision_config.image_size,
            max_tokens: hf.text_config.max_position_embeddings,
            pad_id,
        })
    }

    /// `[labels, tokens]` ids of the labels written into `template` (`{}` marks the label).
    pub fn encode_labels(&self, labels: &[String], template: &str) -> Result<Tensor, VisionError> {
        if labels.is_empty() {
            return Err(VisionError::Invalid(
                "no labels to classify into: give at least one".into(),
            ));
        }
        let mut rows: Vec<Vec<u32>> = Vec::new();
        for label in labels {
            let text = if template.contains("{}") {
                template.replace("{}", label)
            } else {
                format!("{template} {label}")
            };
            let encoding = self
                .tokenizer
                .encode(text.as_str(), true)
                .map_err(|e| VisionError::Invalid(format!("cannot tokenize `{text}`: {e}")))?;
            let mut ids = encoding.get_ids().to_vec();
            if ids.len() > self.max_tokens {
                return Err(VisionError::Invalid(format!(
                    "`{text}` is {} tokens; the model reads at most {}",
                    ids.len(),
                    self.max_tokens
                )));
            }
            ids.shrink_to_fit();
            rows.push(ids);
        }
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let flat: Vec<u32> = rows
            .iter()
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.pad_id, longest - r.len()))
            })
            .collect();
        Ok(Tensor::from_vec(flat, (rows.len(), longest), &Device::Cpu)?)
    }

    /// `[3, size, size]` pixels: shortest side resized to the model's size (bicubic),
    /// centre-cropped, normalised.
    pub fn preprocess(&self, image: &DynamicImage) -> Vec<f32> {
        let size = self.image_size as u32;
        let rgb = image.to_rgb8();
        let (w, h) = rgb.dimensions();
        let resized = if w.min(h) == size {
            rgb
        } else {
            let scale = size as f32 / w.min(h) as f32;
            let (nw, nh) = (
                ((w as f32 * scale).round() as u32).max(size),
                ((h as f32 * scale).round() as u32).max(size),
            );
            image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::CatmullRom)
        };
        let (rw, rh) = resized.dimensions();
        let (x0, y0) = ((rw - size) / 2, (rh - size) / 2);
        let plane = (size * size) as usize;
        let mut pixels = vec![0f32; 3 * plane];
        for y in 0..size {
            for x in 0..size {
                let p = resized.get_pixel(x0 + x, y0 + y);
                for c in 0..3 {
                    pixels[c * plane + (y * size + x) as usize] =
                        (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c];
                }
            }
        }
        pixels
    }

    /// Logits `[images, labels]` (scaled cosine similarities).
    pub fn logits(
        &self,
        images: &[DynamicImage],
        labels: &[String],
        template: &str,
    ) -> Result<Vec<Vec<f32>>, VisionError> {
        let ids = self.encode_labels(labels, template)?;
        let size = self.image_size;
        let pixels: Vec<f32> = images.iter().flat_map(|i| self.preprocess(i)).collect();
        let pixels = Tensor::from_vec(pixels, (images.len(), 3, size, size), &Device::Cpu)?;
        let (_, per_image) = self.model.forward(&pixels, &ids)?;
        Ok(per_image.to_vec2()?)
    }

    /// Probabilities per label for each image (softmax over the labels).
    pub fn classify(
        &self,
        images: &[DynamicImage],
        labels: &[String],
        template: &str,
    ) -> Result<Vec<Vec<f32>>, VisionError> {
        Ok(self
            .logits(images, labels, template)?
            .into_iter()
            .map(|row| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = row.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = exps.iter().sum();
                exps.into_iter().map(|e| e / sum).collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip")
    }

    /// A tiny random CLIP made with Hugging Face transformers (see make_tiny_clip.py):
    /// our token ids and logits equal the reference's.
    #[test]
    fn matches_the_transformers_reference() {
        let dir = fixture();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let labels: Vec<String> = expected["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        let template = expected["template"].as_str().unwrap();
        let clip = ZeroShot::load(&dir).unwrap();
        let ids: Vec<Vec<u32>> = clip
            .encode_labels(&labels, template)
            .unwrap()
            .to_vec2()
            .unwrap();
        let reference_ids: Vec<Vec<u32>> =
            serde_json::from_value(expected["input_ids"].clone()).unwrap();
        assert_eq!(ids, reference_ids);
        let images: Vec<DynamicImage> = (0..2)
            .map(|i| image::open(dir.join(format!("image{i}.png"))).unwrap())
            .collect();
        let logits = clip.logits(&images, &labels, template).unwrap();
        let reference: Vec<Vec<f64>> =
            serde_json::from_value(expected["logits_per_image"].clone()).unwrap();
        for (ours, theirs) in logits.iter().flatten().zip(reference.iter().flatten()) {
            assert!(
                (f64::from(*ours) - theirs).abs() < 1e-4,
                "ours {ours}, transformers {theirs}"
            );
        }
        let probabilities = clip.classify(&images, &labels, template).unwrap();
        let reference: Vec<Vec<f64>> =
            serde_json::from_value(expected["probabilities"].clone()).unwrap();
        for (ours, theirs) in probabilities
            .iter()
            .flatten()
            .zip(reference.iter().flatten())
        {
            assert!((f64::from(*ours) - theirs).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let clip = ZeroShot::load(&fixture()).unwrap();
        assert!(
            clip.encode_labels(&[], "a photo of a {}")
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
        let long = vec!["cat ".repeat(40)];
        assert!(
            clip.encode_labels(&long, "{}")
                .unwrap_err()
                .to_string()
                .contains("at most 16")
        );
        let err = resolve_model("no/such-model").unwrap_err().to_string();
        assert!(err.contains("Hugging Face cache"), "{err}");
    }
}
