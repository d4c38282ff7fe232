//! GGUF model header reader: metadata, tensor table and a completeness check.
//!
//! promptlab only needs to know *what* a model file is (architecture, size,
//! quantization, chat template, special tokens) and whether it was downloaded in
//! full, so this reads the header with buffered I/O and never touches the tensor
//! data: a multi-GB model is inspected in milliseconds. Every length in the file
//! is untrusted; it is checked against the file size before anything is
//! allocated or skipped, so corrupt files give an error naming the file, never a
//! panic or a huge allocation. Spec: GGUF v2/v3, little-endian.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Arrays longer than this are summarised, not kept: vocabularies have 100k+ entries.
const MAX_KEPT_ARRAY: u64 = 64;
/// No real key, token or template comes near this; a longer string means corruption.
const MAX_STRING: u64 = 64 << 20;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays nested deeper than this are corruption (and would grow the stack).
const MAX_NESTING: u32 = 8;
const DEFAULT_ALIGNMENT: u64 = 32;
const TOKENS_KEY: &str = "tokenizer.ggml.tokens";
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const TYPE_NAMES: [&str; 13] = [
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
];

/// What promptlab knows about a model file after reading its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufInfo {
    pub version: u32,
    /// All key/values; arrays longer than 64 elements keep only their type and length.
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensor_count: u64,
    /// Sum over tensors of the product of their dimensions.
    pub parameter_count: u64,
    /// Start of the tensor data section.
    pub data_offset: u64,
    /// End of the furthest tensor, relative to `data_offset`.
    pub data_size: u64,
    pub file_size: u64,
    /// Parameters per ggml tensor type name (e.g. "Q4_K"); used when `general.file_type` is missing.
    pub tensor_types: BTreeMap<String, u64>,
    /// BOS / EOS token text, resolved while reading because the vocabulary is not kept.
    pub bos_text: Option<String>,
    pub eos_text: Option<String>,
    /// Each tensor's name and shape, for checking the hyper-parameters against them.
    #[serde(skip)]
    pub tensors: Vec<TensorShape>,
}

/// A tensor's name and dimensions as the header lists them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TensorShape {
    pub name: String,
    pub dims: Vec<u64>,
}

/// llama.cpp asserts (aborting the process) on more layers than this.
const MAX_LAYERS: u64 = 512;

/// A metadata value; integers are widened so callers need not care about the stored width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaValue {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    String(String),
    /// `values` is `None` when the array had more than 64 elements.
    Array {
        elem_type: String,
        len: u64,
        values: Option<Vec<MetaValue>>,
    },
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U64(v) => Some(v),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: file not found (expected a GGUF model file at this path)", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read file: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a GGUF file ({detail}, expected \"GGUF\")", .path.display())]
    NotGguf { path: PathBuf, detail: String },
    #[error("{}: unsupported GGUF version {version} (expected 2 or 3{hint})", .path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        hint: &'static str,
    },
    #[error(
        "{}: truncated: header needs at least {needed} bytes (reading {what}) but the file has {file_size} bytes",
        .path.display()
    )]
    TruncatedHeader {
        path: PathBuf,
        needed: u64,
        file_size: u64,
        what: String,
    },
    #[error(
        "{}: truncated: tensor data needs {data_size} bytes from offset {data_offset} but the file has {file_size} (expected at least {expected})",
        .path.display()
    )]
    TruncatedData {
        path: PathBuf,
        data_offset: u64,
        data_size: u64,
        file_size: u64,
        expected: u64,
    },
    #[error("{}: metadata key at byte {offset} is not valid UTF-8 (expected a UTF-8 string)", .path.display())]
    InvalidKey { path: PathBuf, offset: u64 },
    #[error("{}: unknown value type {value_type} for key \"{key}\" at byte {offset} (expected 0..=12)", .path.display())]
    UnknownValueType {
        path: PathBuf,
        key: String,
        value_type: u32,
        offset: u64,
    },
    #[error("{}: tensor \"{tensor}\" has unknown ggml type {ggml_type} (expected a known type such as 0 F32, 1 F16, 12 Q4_K)", .path.display())]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        ggml_type: u32,
    },
    #[error("{}: the header does not match the model it holds: {source} (the file is damaged or was not written for llama.cpp)", .path.display())]
    Inconsistent {
        path: PathBuf,
        #[source]
        source: HyperparameterError,
    },
    #[error("{}: corrupt header at byte {offset}: {detail}", .path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
}

/// A hyper-parameter of the header that the tensors contradict (or that llama.cpp would
/// divide by); `key` is the full metadata key, such as `llama.block_count`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HyperparameterError {
    #[error("`{key}` is {layers}; expected 1 to {MAX_LAYERS}")]
    LayerCount { key: String, layers: u64 },
    #[error("tensor `{tensor}` has a zero dimension")]
    ZeroDimension { tensor: String },
    #[error("`{key}` is {layers} but the file has tensors for {found} layers")]
    LayerTensors {
        key: String,
        layers: u64,
        found: usize,
    },
    #[error("`{key}` is 0")]
    ZeroEmbedding { key: String },
    #[error("`{key}` is not a count or a per-layer list")]
    HeadCountShape { key: String },
    #[error("{heads} attention heads cannot share {kv_heads} key/value heads (`{key}`)")]
    KvHeads {
        key: String,
        heads: u64,
        kv_heads: u64,
    },
    #[error("`{key}` {embedding} is not a multiple of the {heads} attention heads")]
    EmbeddingHeads {
        key: String,
        embedding: u64,
        heads: u64,
    },
    #[error("the vocabulary has {vocabulary} tokens but `token_embd.weight` has {rows} rows")]
    VocabularyRows { vocabulary: u64, rows: u64 },
    #[error("`{key}` is {embedding} but `token_embd.weight` rows have {width} values")]
    EmbeddingWidth {
        key: String,
        embedding: u64,
        width: u64,
    },
}

impl GgufInfo {
    /// Reads and validates the header of the GGUF file at `path` (tensor data is never read).
    pub fn read(path: &Path) -> Result<GgufInfo, GgufError> {
        let io_err = |source: io::Error| match source.kind() {
            io::ErrorKind::NotFound => GgufError::NotFound {
                path: path.to_path_buf(),
            },
            _ => GgufError::Io {
                path: path.to_path_buf(),
                source,
            },
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            let detail = "not a regular file".to_string();
            return Err(GgufError::NotGguf {
                path: path.to_path_buf(),
                detail,
            });
        }
        let r = BufReader::with_capacity(64 * 1024, file);
        let info = Parser::new(r, meta.len(), path.to_path_buf()).parse()?;
        info.check_hyperparameters()
            .map_err(|source| GgufError::Inconsistent {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(info)
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)?.as_str()
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    pub fn name(&self) -> Option<&str> {
        self.get_str("general.name")
    }

    /// Transformer layers (`ARCH.block_count`).
    pub fn block_count(&self) -> Option<u64> {
        let key = format!("{}.block_count", self.architecture()?);
        self.metadata.get(&key)?.as_u64()
    }

    pub fn context_length(&self) -> Option<u64> {
        let key = format!("{}.context_length", self.architecture()?);
        self.metadata.get(&key)?.as_u64()
    }

    /// Checks the hyper-parameters llama.cpp trusts against the tensors the file holds: a
    /// header that is well formed but lies (a layer count patched to 1000, a head count
    /// that does not divide the embedding) makes llama.cpp abort the whole process, so such
    /// a file is refused here, with what is wrong.
    fn check_hyperparameters(&self) -> Result<(), HyperparameterError> {
        // Without these keys llama.cpp refuses the file with an error of its own.
        let Some(arch) = self.architecture() else {
            return Ok(());
        };
        let key = |name: &str| format!("{arch}.{name}");
        let number = |name: &str| self.metadata.get(&key(name)).and_then(MetaValue::as_u64);
        let Some(layers) = number("block_count") else {
            return Ok(());
        };
        if layers == 0 || layers > MAX_LAYERS {
            return Err(HyperparameterError::LayerCount {
                key: key("block_count"),
                layers,
            });
        }
        let mut blocks = std::collections::BTreeSet::new();
        for tensor in &self.tensors {
            if tensor.dims.contains(&0) {
                return Err(HyperparameterError::ZeroDimension {
                    tensor: tensor.name.clone(),
                });
            }
            if let Some(index) = tensor
                .name
                .strip_prefix("blk.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse::<u64>().ok())
            {
                blocks.insert(index);
            }
        }
        if !blocks.is_empty()
            && (blocks.len() as u64 != layers || blocks.last() != Some(&(layers - 1)))
        {
            return Err(HyperparameterError::LayerTensors {
                key: key("block_count"),
                layers,
                found: blocks.len(),
            });
        }
        let embedding = number("embedding_length");
        if embedding == Some(0) {
            return Err(HyperparameterError::ZeroEmbedding {
                key: key("embedding_length"),
            });
        }
        // Head counts are one number, or one per layer.
        let heads = |name: &str| -> Result<Vec<u64>, HyperparameterError> {
            match self.metadata.get(&key(name)) {
                None => Ok(Vec::new()),
                Some(MetaValue::Array {
                    values: Some(values),
                    len,
                    ..
                }) if *len == layers => Ok(values.iter().filter_map(MetaValue::as_u64).collect()),
                Some(value) => match value.as_u64() {
                    Some(n) => Ok(vec![n]),
                    None => Err(HyperparameterError::HeadCountShape { key: key(name) }),
                },
            }
        };
        let head_count = heads("attention.head_count")?;
        let head_count_kv = heads("attention.head_count_kv")?;
        for (i, &q) in head_count.iter().enumerate() {
            let kv = head_count_kv
                .get(i)
                .or(head_count_kv.first())
                .copied()
                .unwrap_or(q);
            if q > 0 && (kv == 0 || q % kv != 0) {
                return Err(HyperparameterError::KvHeads {
                    key: key("attention.head_count_kv"),
                    heads: q,
                    kv_heads: kv,
                });
            }
            let explicit_head_size = self.metadata.contains_key(&key("attention.key_length"));
            if let Some(embedding) = embedding
                && q > 0
                && !explicit_head_size
                && embedding % q != 0
            {
                return Err(HyperparameterError::EmbeddingHeads {
                    key: key("embedding_length"),
                    embedding,
                    heads: q,
                });
            }
        }
        let vocabulary = match self.metadata.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array { len, .. }) => Some(*len),
            _ => None,
        };
        let token_embd = self.tensors.iter().find(|t| t.name == "token_embd.weight");
        if let (Some(vocabulary), Some(tensor)) = (vocabulary, token_embd) {
            let rows = tensor.dims.get(1).copied().unwrap_or(1);
            if rows != vocabulary {
                return Err(HyperparameterError::VocabularyRows { vocabulary, rows });
            }
            if let Some(embedding) = embedding
                && tensor.dims.first() != Some(&embedding)
            {
                return Err(HyperparameterError::EmbeddingWidth {
                    key: key("embedding_length"),
                    embedding,
                    width: tensor.dims.first().copied().unwrap_or(0),
                });
            }
        }
        Ok(())
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// Quantization label, e.g. "Q4_K_M": from `general.file_type`, else the tensor
    /// type holding the most parameters (not the most tensors: small F32 norms outnumber weights).
    pub fn quantization(&self) -> String {
        let file_type = self
            .metadata
            .get("general.file_type")
            .and_then(MetaValue::as_u64);
        // 1024 is llama.cpp's LLAMA_FTYPE_GUESSED flag.
        if let Some(name) = file_type.and_then(|ft| file_type_name(ft & !1024)) {
            return name.to_string();
        }
        let dominant = self.tensor_types.iter().max_by_key(|(_, n)| **n);
        dominant.map_or_else(|| "unknown".to_string(), |(t, _)| t.clone())
    }

    pub fn bos_token(&self) -> Option<String> {
        self.bos_text.clone()
    }

    pub fn eos_token(&self) -> Option<String> {
        self.eos_text.clone()
    }
}

/// llama.cpp's `llama_ftype` numbering (llama.h).
#[rustfmt::skip]
const FILE_TYPES: &[(u64, &str)] = &[
    (0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (8, "Q5_0"), (9, "Q5_1"),
    (10, "Q2_K"), (11, "Q3_K_S"), (12, "Q3_K_M"), (13, "Q3_K_L"), (14, "Q4_K_S"), (15, "Q4_K_M"),
    (16, "Q5_K_S"), (17, "Q5_K_M"), (18, "Q6_K"), (19, "IQ2_XXS"), (20, "IQ2_XS"), (21, "Q2_K_S"),
    (22, "IQ3_XS"), (23, "IQ3_XXS"), (24, "IQ1_S"), (25, "IQ4_NL"), (26, "IQ3_S"), (27, "IQ3_M"),
    (28, "IQ2_S"), (29, "IQ2_M"), (30, "IQ4_XS"), (31, "IQ1_M"), (32, "BF16"), (36, "TQ1_0"),
    (37, "TQ2_0"), (38, "MXFP4_MOE"), (39, "NVFP4"), (40, "Q1_0"),
];

/// ggml type id, name, elements per block, bytes per block: ggml's type_traits
/// (checked against ggml-common.h block structs; gguf-py's 40-byte Q8_1 is stale).
#[rustfmt::skip]
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4), (1, "F16", 1, 2), (2, "Q4_0", 32, 18), (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22), (7, "Q5_1", 32, 24), (8, "Q8_0", 32, 34), (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84), (11, "Q3_K", 256, 110), (12, "Q4_K", 256, 144), (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210), (15, "Q8_K", 256, 292), (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74), (18, "IQ3_XXS", 256, 98), (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18), (21, "IQ3_S", 256, 110), (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136), (24, "I8", 1, 1), (25, "I16", 1, 2), (26, "I32", 1, 4),
    (27, "I64", 1, 8), (28, "F64", 1, 8), (29, "IQ1_M", 256, 56), (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54), (35, "TQ2_0", 256, 66), (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36), (41, "Q1_0", 128, 18),
];

fn file_type_name(ft: u64) -> Option<&'static str> {
    FILE_TYPES.iter().find(|t| t.0 == ft).map(|t| t.1)
}

fn ggml_type(ty: u32) -> Option<(&'static str, u64, u64)> {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == ty)
        .map(|t| (t.1, t.2, t.3))
}

/// Size of a scalar GGUF value type; `None` for string and array.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

mod parser;
#[cfg(test)]
mod tests;

use parser::Parser;
