//! How much of a GGUF model runs on a GPU: `gpu_layers` in `models.yaml` and
//! `--gpu-layers` on the command line.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The transformer layers put on a GPU; the rest run on the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GpuLayers {
    /// Every layer and the output layer (llama.cpp's default): the fastest when the
    /// model fits in the GPU's memory.
    #[default]
    All,
    /// None: the model runs on the CPU even when a GPU is present.
    None,
    /// The last N layers; for a model larger than the GPU's memory.
    Count(u32),
}

impl GpuLayers {
    /// Whether any layer goes to a GPU.
    pub fn offloads(self) -> bool {
        !matches!(self, GpuLayers::None | GpuLayers::Count(0))
    }

    /// llama.cpp's `n_gpu_layers`: a count, with "all" as any number above the model's layers.
    pub fn llama_count(self) -> u32 {
        match self {
            GpuLayers::All => i32::MAX as u32,
            GpuLayers::None => 0,
            GpuLayers::Count(n) => n,
        }
    }
}

/// The words `gpu_layers` takes, for error messages.
pub const GPU_LAYERS_FORMS: &str = "`all`, `none` or a number of layers";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a GPU layer count: write {GPU_LAYERS_FORMS}")]
pub struct GpuLayersError(String);

impl FromStr for GpuLayers {
    type Err = GpuLayersError;

    fn from_str(text: &str) -> Result<GpuLayers, GpuLayersError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(GpuLayers::All),
            "none" => Ok(GpuLayers::None),
            number => number
                .parse::<u32>()
                .map(GpuLayers::Count)
                .map_err(|_| GpuLayersError(text.to_string())),
        }
    }
}

impl fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLayers::All => f.write_str("all"),
            GpuLayers::None => f.write_str("none"),
            GpuLayers::Count(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for GpuLayers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            GpuLayers::Count(n) => serializer.serialize_u32(*n),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for GpuLayers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GpuLayers, D::Error> {
        struct LayersVisitor;

        impl Visitor<'_> for LayersVisitor {
            type Value = GpuLayers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(GPU_LAYERS_FORMS)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<GpuLayers, E> {
                u32::try_from(n)
                    .map(GpuLayers::Count)
                    .map_err(|_| E::custom(format!("{n} layers is more than any model has")))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<GpuLayers, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "{n} is not a GPU layer count: write {GPU_LAYERS_FORMS}"
                    ))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<GpuLayers, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(LayersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_numbers_parse() {
        assert_eq!("all".parse(), Ok(GpuLayers::All));
        assert_eq!(" None ".parse(), Ok(GpuLayers::None));
        assert_eq!("12".parse(), Ok(GpuLayers::Count(12)));
        let err = "half".parse::<GpuLayers>().unwrap_err().to_string();
        assert!(
            err.contains("`half`") && err.contains("`all`, `none`"),
            "{err}"
        );
        assert!("-3".parse::<GpuLayers>().is_err());
    }

    #[test]
    fn yaml_takes_words_and_numbers_and_refuses_the_rest() {
        let read = |text: &str| serde_norway::from_str::<GpuLayers>(text);
        assert_eq!(read("all").unwrap(), GpuLayers::All);
        assert_eq!(read("none").unwrap(), GpuLayers::None);
        assert_eq!(read("28").unwrap(), GpuLayers::Count(28));
        assert!(
            read("-1")
                .unwrap_err()
                .to_string()
                .contains("not a GPU layer count")
        );
        assert!(read("1.5").is_err());
        assert!(read("some").unwrap_err().to_string().contains("`some`"));
    }

    #[test]
    fn written_back_as_read() {
        for layers in [GpuLayers::All, GpuLayers::None, GpuLayers::Count(7)] {
            let text = serde_norway::to_string(&layers).unwrap();
            assert_eq!(serde_norway::from_str::<GpuLayers>(&text).unwrap(), layers);
        }
    }

    #[test]
    fn zero_layers_offload_nothing() {
        assert!(!GpuLayers::Count(0).offloads());
        assert!(!GpuLayers::None.offloads());
        assert!(GpuLayers::All.offloads() && GpuLayers::Count(1).offloads());
        assert_eq!(GpuLayers::None.llama_count(), 0);
        assert!(GpuLayers::All.llama_count() > 10_000);
    }
}
