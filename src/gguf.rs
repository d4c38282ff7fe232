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
}

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
    #[error("{}: corrupt header at byte {offset}: {detail}", .path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
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
        Parser {
            r,
            pos: 0,
            len: meta.len(),
            path: path.to_path_buf(),
            tokens: None,
        }
        .parse()
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

    pub fn context_length(&self) -> Option<u64> {
        let key = format!("{}.context_length", self.architecture()?);
        self.metadata.get(&key)?.as_u64()
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

struct Parser<R> {
    r: R,
    /// Tracked by hand: cheaper than asking the reader, and every check needs it.
    pos: u64,
    len: u64,
    path: PathBuf,
    /// File offset of the first element and length of `tokenizer.ggml.tokens`.
    tokens: Option<(u64, u64)>,
}

impl<R: Read + Seek> Parser<R> {
    fn corrupt(&self, detail: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.clone(),
            offset: self.pos,
            detail,
        }
    }

    fn io(&self, source: io::Error) -> GgufError {
        GgufError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Fails with "truncated" unless `n` more bytes exist; called before every read or skip.
    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            end => Err(GgufError::TruncatedHeader {
                path: self.path.clone(),
                needed: end.unwrap_or(u64::MAX),
                file_size: self.len,
                what: what.to_string(),
            }),
        }
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.r.read_exact(&mut buf).map_err(|e| self.io(e))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.bytes(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.bytes(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        let delta =
            i64::try_from(n).map_err(|_| self.corrupt(format!("{what}: length {n} too large")))?;
        // BufReader::seek_relative keeps its buffer when the target is inside it.
        self.r.seek_relative(delta).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(())
    }

    /// Reads a string's length prefix and checks the bytes exist before anyone allocates them.
    fn string_len(&mut self, what: &str) -> Result<u64, GgufError> {
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(self.corrupt(format!(
                "{what}: string length {n} exceeds the 64 MiB limit"
            )));
        }
        self.need(n, what)?;
        Ok(n)
    }

    fn raw_string(&mut self, what: &str) -> Result<Vec<u8>, GgufError> {
        let n = self.string_len(what)?;
        let mut buf = vec![0u8; n as usize]; // n <= 64 MiB and present in the file
        self.r.read_exact(&mut buf).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(buf)
    }

    /// Values are not validated as UTF-8 (some vocabularies hold raw bytes); keys are.
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        Ok(String::from_utf8_lossy(&self.raw_string(what)?).into_owned())
    }

    fn value_type(&mut self, key: &str) -> Result<u32, GgufError> {
        let offset = self.pos;
        let ty = self.u32("value type")?;
        if ty as usize >= TYPE_NAMES.len() {
            let key = key.to_string();
            return Err(GgufError::UnknownValueType {
                path: self.path.clone(),
                key,
                value_type: ty,
                offset,
            });
        }
        Ok(ty)
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<MetaValue, GgufError> {
        use MetaValue::*;
        Ok(match ty {
            0 => U64(u64::from(self.bytes::<1>(key)?[0])),
            1 => I64(i64::from(i8::from_le_bytes(self.bytes(key)?))),
            2 => U64(u64::from(u16::from_le_bytes(self.bytes(key)?))),
            3 => I64(i64::from(i16::from_le_bytes(self.bytes(key)?))),
            4 => U64(u64::from(self.u32(key)?)),
            5 => I64(i64::from(i32::from_le_bytes(self.bytes(key)?))),
            6 => F64(f64::from(f32::from_le_bytes(self.bytes(key)?))),
            7 => Bool(self.bytes::<1>(key)?[0] != 0),
            T_STRING => String(self.string(key)?),
            T_ARRAY => self.array(key, depth)?,
            10 => U64(self.u64(key)?),
            11 => I64(i64::from_le_bytes(self.bytes(key)?)),
            12 => F64(f64::from_le_bytes(self.bytes(key)?)),
            _ => return Err(self.corrupt(format!("{key}: unknown value type {ty}"))),
        })
    }

    fn array(&mut self, key: &str, depth: u32) -> Result<MetaValue, GgufError> {
        if depth >= MAX_NESTING {
            return Err(self.corrupt(format!("{key}: arrays nested more than {MAX_NESTING} deep")));
        }
        let elem = self.value_type(key)?;
        let len = self.u64(key)?;
        if len > self.len {
            let detail = format!(
                "array \"{key}\" claims {len} elements but the file has {} bytes",
                self.len
            );
            return Err(self.corrupt(detail));
        }
        let start = self.pos;
        let values = if len <= MAX_KEPT_ARRAY {
            let mut v = Vec::with_capacity(len as usize); // len <= 64
            for _ in 0..len {
                v.push(self.value(elem, key, depth + 1)?);
            }
            Some(v)
        } else if let Some(size) = scalar_size(elem) {
            let total = len
                .checked_mul(size)
                .ok_or_else(|| self.corrupt(format!("{key}: array size overflows")))?;
            self.skip(total, key)?;
            None
        } else {
            for _ in 0..len {
                if elem == T_STRING {
                    let n = self.string_len(key)?;
                    self.skip(n, key)?;
                } else {
                    self.array(key, depth + 1)?;
                }
            }
            None
        };
        if depth == 0 && elem == T_STRING && key == TOKENS_KEY {
            self.tokens = Some((start, len));
        }
        let elem_type = TYPE_NAMES
            .get(elem as usize)
            .copied()
            .unwrap_or("?")
            .to_string();
        Ok(MetaValue::Array {
            elem_type,
            len,
            values,
        })
    }

    fn parse(mut self) -> Result<GgufInfo, GgufError> {
        if self.len < 4 {
            let detail = if self.len == 0 {
                "the file is empty".to_string()
            } else {
                format!("the file has only {} bytes", self.len)
            };
            return Err(GgufError::NotGguf {
                path: self.path.clone(),
                detail,
            });
        }
        let magic: [u8; 4] = self.bytes("magic")?;
        if &magic != b"GGUF" {
            let [a, b, c, d] = magic;
            // Printable bytes shown as text so e.g. a safetensors or ELF file is recognisable.
            let text: String = magic
                .iter()
                .map(|&ch| {
                    if ch.is_ascii_graphic() {
                        ch as char
                    } else {
                        '.'
                    }
                })
                .collect();
            let detail = format!("magic bytes {a:02x} {b:02x} {c:02x} {d:02x} \"{text}\"");
            return Err(GgufError::NotGguf {
                path: self.path.clone(),
                detail,
            });
        }
        let version = self.u32("version")?;
        if version != 2 && version != 3 {
            let hint = match version {
                1 => "; version 1 with 32-bit counts is not supported, re-convert the model",
                _ if (1..=3).contains(&version.swap_bytes()) => {
                    "; this looks like a big-endian file, only little-endian is supported"
                }
                _ => "",
            };
            return Err(GgufError::UnsupportedVersion {
                path: self.path.clone(),
                version,
                hint,
            });
        }
        let tensor_count = self.u64("tensor count")?;
        let kv_count = self.u64("key/value count")?;
        // Each entry takes several bytes, so a count above the file size is corruption.
        if tensor_count > self.len || kv_count > self.len {
            let detail = format!(
                "absurd counts: {tensor_count} tensors, {kv_count} key/values in a {}-byte file",
                self.len
            );
            return Err(self.corrupt(detail));
        }

        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let offset = self.pos;
            let raw = self.raw_string("metadata key")?;
            let key = String::from_utf8(raw).map_err(|_| GgufError::InvalidKey {
                path: self.path.clone(),
                offset,
            })?;
            let ty = self.value_type(&key)?;
            let value = self.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::Corrupt {
                    path: self.path.clone(),
                    offset,
                    detail: format!("duplicate key \"{key}\""),
                });
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() => a,
                _ => {
                    return Err(self.corrupt(format!(
                        "general.alignment is {v:?}, expected a power of two"
                    )));
                }
            },
        };

        let (mut parameter_count, mut data_size) = (0u64, 0u64);
        let mut tensor_types: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..tensor_count {
            let name = self.string("tensor name")?;
            let n_dims = self.u32("tensor dimension count")?;
            if n_dims > MAX_DIMS {
                return Err(self.corrupt(format!(
                    "tensor \"{name}\" has {n_dims} dimensions, expected at most {MAX_DIMS}"
                )));
            }
            let mut dims = [1u64; MAX_DIMS as usize];
            for d in dims.iter_mut().take(n_dims as usize) {
                *d = self.u64("tensor dimension")?;
            }
            let ggml_type_id = self.u32("tensor type")?;
            let offset = self.u64("tensor offset")?;
            let Some((type_name, block, block_bytes)) = ggml_type(ggml_type_id) else {
                return Err(GgufError::UnknownTensorType {
                    path: self.path.clone(),
                    tensor: name,
                    ggml_type: ggml_type_id,
                });
            };
            let overflow = || format!("tensor \"{name}\" size overflows");
            let elems = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| self.corrupt(overflow()))?;
            // ggml requires whole blocks per row, so bytes = blocks * block_bytes exactly.
            if dims[0] % block != 0 {
                let detail = format!(
                    "tensor \"{name}\" row of {} is not a multiple of the {type_name} block size {block}",
                    dims[0]
                );
                return Err(self.corrupt(detail));
            }
            let end = (elems / block)
                .checked_mul(block_bytes)
                .and_then(|b| b.checked_add(offset));
            let end = end.ok_or_else(|| self.corrupt(overflow()))?;
            if offset % alignment != 0 {
                let detail =
                    format!("tensor \"{name}\" offset {offset} is not aligned to {alignment}");
                return Err(self.corrupt(detail));
            }
            data_size = data_size.max(end);
            parameter_count = parameter_count
                .checked_add(elems)
                .ok_or_else(|| self.corrupt(overflow()))?;
            let slot = tensor_types.entry(type_name.to_string()).or_default();
            *slot = slot.saturating_add(elems);
        }

        let data_offset = self.pos.div_ceil(alignment).checked_mul(alignment);
        let expected = data_offset.and_then(|o| o.checked_add(data_size));
        let (Some(data_offset), Some(expected)) = (data_offset, expected) else {
            return Err(self.corrupt("tensor data extent overflows".to_string()));
        };
        // A file without tensors may legitimately end before the padding.
        if tensor_count > 0 && expected > self.len {
            let (path, file_size) = (self.path.clone(), self.len);
            return Err(GgufError::TruncatedData {
                path,
                data_offset,
                data_size,
                file_size,
                expected,
            });
        }

        let id = |key: &str| metadata.get(key).and_then(MetaValue::as_u64);
        let (bos_id, eos_id) = (
            id("tokenizer.ggml.bos_token_id"),
            id("tokenizer.ggml.eos_token_id"),
        );
        let (bos_text, eos_text) = self.token_texts(bos_id, eos_id)?;
        Ok(GgufInfo {
            version,
            metadata,
            tensor_count,
            parameter_count,
            data_offset,
            data_size,
            file_size: self.len,
            tensor_types,
            bos_text,
            eos_text,
        })
    }

    /// Re-reads the start of the vocabulary up to the larger id: the ids may follow the
    /// array in the file, and special tokens have small ids, so this costs next to nothing.
    fn token_texts(
        &mut self,
        bos: Option<u64>,
        eos: Option<u64>,
    ) -> Result<(Option<String>, Option<String>), GgufError> {
        let Some((start, len)) = self.tokens else {
            return Ok((None, None));
        };
        let wanted = |id: Option<u64>| id.filter(|&i| i < len);
        let (bos, eos) = (wanted(bos), wanted(eos));
        let Some(last) = bos.max(eos) else {
            return Ok((None, None));
        };
        self.r
            .seek(SeekFrom::Start(start))
            .map_err(|e| self.io(e))?;
        self.pos = start;
        let (mut bos_text, mut eos_text) = (None, None);
        for i in 0..=last {
            if Some(i) == bos || Some(i) == eos {
                let text = self.string(TOKENS_KEY)?;
                if Some(i) == bos {
                    bos_text = Some(text.clone());
                }
                if Some(i) == eos {
                    eos_text = Some(text);
                }
            } else {
                let n = self.string_len(TOKENS_KEY)?;
                self.skip(n, TOKENS_KEY)?;
            }
        }
        Ok((bos_text, eos_text))
    }
}

#[cfg(test)]
mod tests;
