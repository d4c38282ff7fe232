//! The byte-level reader behind `GgufInfo::read`: every length is checked against the
//! file size before anything is allocated or skipped.

use super::*;

pub(super) struct Parser<R> {
    r: R,
    /// Tracked by hand: cheaper than asking the reader, and every check needs it.
    pos: u64,
    len: u64,
    path: PathBuf,
    /// File offset of the first element and length of `tokenizer.ggml.tokens`.
    tokens: Option<(u64, u64)>,
}

impl<R: Read + Seek> Parser<R> {
    pub(super) fn new(r: R, len: u64, path: PathBuf) -> Self {
        Parser {
            r,
            pos: 0,
            len,
            path,
            tokens: None,
        }
    }

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

    pub(super) fn parse(mut self) -> Result<GgufInfo, GgufError> {
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
        let mut tensors = Vec::with_capacity(tensor_count.min(1 << 16) as usize);
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
            tensors.push(super::TensorShape {
                name,
                dims: dims[..n_dims as usize].to_vec(),
            });
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
            tensors,
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
