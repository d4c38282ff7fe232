//! Unit tests of the parent module.
use super::*;
use std::io::Write;
use std::time::Instant;

/// The real models come from scripts/fetch-models.sh; a missing one is a setup error.
fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("PROMPTLAB_MODELS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/promptlab/models")
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn read_bytes(bytes: &[u8]) -> (Result<GgufInfo, GgufError>, tempfile::NamedTempFile) {
    let f = write_temp(bytes);
    (GgufInfo::read(f.path()), f)
}

/// Builds small synthetic GGUF files for the cases no real model exercises.
#[derive(Default)]
struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

fn gstr(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s);
}

impl Builder {
    fn kv(mut self, key: &[u8], ty: u32, payload: &[u8]) -> Self {
        gstr(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(payload);
        self.n_kv += 1;
        self
    }
    fn u32(self, key: &str, v: u32) -> Self {
        self.kv(key.as_bytes(), 4, &v.to_le_bytes())
    }
    fn str(self, key: &str, v: &str) -> Self {
        let mut p = Vec::new();
        gstr(&mut p, v.as_bytes());
        self.kv(key.as_bytes(), T_STRING, &p)
    }
    fn strs(self, key: &str, items: &[String]) -> Self {
        let mut p = T_STRING.to_le_bytes().to_vec();
        p.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|s| gstr(&mut p, s.as_bytes()));
        self.kv(key.as_bytes(), T_ARRAY, &p)
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        gstr(&mut self.tensors, name.as_bytes());
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        dims.iter()
            .for_each(|d| self.tensors.extend(d.to_le_bytes()));
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    fn build(&self, data_len: usize) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.tensors);
        b.resize(b.len().div_ceil(32) * 32 + data_len, 0);
        b
    }
}

fn vocab(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tok{i}")).collect()
}

#[test]
fn smollm2_header() {
    let info = GgufInfo::read(&model("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert_eq!(info.version, 3);
    assert_eq!(info.architecture(), Some("llama"));
    assert!(
        info.name().is_some_and(|n| n.contains("135M")),
        "{:?}",
        info.name()
    );
    assert_eq!(info.quantization(), "Q4_1");
    assert!(info.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(info.context_length(), Some(8192));
    assert_eq!(info.bos_token().as_deref(), Some("<|im_start|>"));
    assert_eq!(info.eos_token().as_deref(), Some("<|im_end|>"));
    assert_eq!(info.tensor_count, 272);
    assert!((130_000_000..140_000_000).contains(&info.parameter_count));
    // The file ends exactly where the last tensor does.
    assert_eq!(info.data_offset + info.data_size, info.file_size);
    let tokens = &info.metadata[TOKENS_KEY];
    let summary = MetaValue::Array {
        elem_type: "string".into(),
        len: 49152,
        values: None,
    };
    assert_eq!(tokens, &summary);
    let langs = &info.metadata["general.languages"];
    let en = Some(vec![MetaValue::String("en".into())]);
    assert!(matches!(langs, MetaValue::Array { values, .. } if *values == en));
}

#[test]
fn gemma3_header_is_fast() {
    let path = model("gemma-3-270m-q4_k_m.gguf");
    let start = Instant::now();
    let info = GgufInfo::read(&path).unwrap();
    let elapsed = start.elapsed();
    eprintln!(
        "gemma header ({} bytes of {}) read in {elapsed:?}",
        info.data_offset, info.file_size
    );
    assert_eq!(info.architecture(), Some("gemma3"));
    assert_eq!(info.quantization(), "Q4_K_M");
    assert_eq!(info.chat_template(), None);
    assert_eq!(info.context_length(), Some(32768));
    assert_eq!(info.bos_token().as_deref(), Some("<bos>"));
    assert_eq!(info.eos_token().as_deref(), Some("<eos>"));
    assert!((250_000_000..290_000_000).contains(&info.parameter_count));
    assert_eq!(info.data_offset + info.data_size, info.file_size);
    // Generous bound for a loaded 2-core machine; reading the weights would take far longer.
    assert!(elapsed.as_secs() < 5, "took {elapsed:?}");
}

#[test]
fn half_copy_is_truncated_data() {
    let src = model("gemma-3-270m-q4_k_m.gguf");
    let info = GgufInfo::read(&src).unwrap();
    // Sparse copy: the real header, then set_len pads with holes to half the size.
    let mut out = tempfile::NamedTempFile::new().unwrap();
    let mut header = File::open(&src).unwrap().take(info.data_offset);
    io::copy(&mut header, &mut out).unwrap();
    out.as_file().set_len(info.file_size / 2).unwrap();
    let err = GgufInfo::read(out.path()).unwrap_err();
    assert!(matches!(err, GgufError::TruncatedData { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&out.path().display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("expected at least {}", info.file_size)),
        "{msg}"
    );
}

#[test]
fn header_cut_at_1000_bytes_is_truncated_header() {
    let mut head = vec![0u8; 1000];
    let src = model("SmolLM2-135M-Instruct.Q4_1.gguf");
    File::open(src).unwrap().read_exact(&mut head).unwrap();
    let (res, f) = read_bytes(&head);
    let err = res.unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TruncatedHeader {
                file_size: 1000,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&f.path().display().to_string()) && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn not_gguf_empty_and_missing() {
    // Deterministic noise (xorshift); first byte fixed so it can never read "GGUF".
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    noise[0] = 0x7f;
    let (res, _f) = read_bytes(&noise);
    let msg = res.unwrap_err().to_string();
    assert!(
        msg.contains("not a GGUF file") && msg.contains("expected \"GGUF\""),
        "{msg}"
    );

    let (res, _f) = read_bytes(&[]);
    let err = res.unwrap_err();
    assert!(matches!(err, GgufError::NotGguf { .. }) && err.to_string().contains("empty"));

    let missing = Path::new("/nonexistent/dir/model.gguf");
    let err = GgufInfo::read(missing).unwrap_err();
    assert!(matches!(err, GgufError::NotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/model.gguf"));

    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        GgufInfo::read(dir.path()),
        Err(GgufError::NotGguf { .. })
    ));
}

#[test]
fn synthetic_extent_params_and_fallback_quantization() {
    // Q4_0 [64, 2] = 4 blocks * 18 B = 72 B at 0; F32 [3] = 12 B at 96 -> extent 108.
    let b = Builder::default()
        .u32("general.alignment", 32)
        .tensor("w", &[64, 2], 2, 0)
        .tensor("norm", &[3], 0, 96);
    let (info, _f) = read_bytes(&b.build(108));
    let info = info.unwrap();
    assert_eq!(
        (info.parameter_count, info.data_size, info.tensor_count),
        (131, 108, 2)
    );
    assert_eq!(info.data_offset % 32, 0);
    assert_eq!(info.quantization(), "Q4_0"); // by parameters, not tensor count
    let (res, _f) = read_bytes(&b.build(107));
    assert!(matches!(res, Err(GgufError::TruncatedData { expected, .. }) if expected % 32 == 12));

    let (info, _f) = read_bytes(&Builder::default().build(0));
    assert_eq!(info.unwrap().quantization(), "unknown");
    let guessed = Builder::default().u32("general.file_type", 1024 | 15);
    assert_eq!(
        read_bytes(&guessed.build(0)).0.unwrap().quantization(),
        "Q4_K_M"
    );
}

#[test]
fn special_tokens_before_or_after_vocabulary() {
    let ids = |b: Builder| {
        b.u32("tokenizer.ggml.bos_token_id", 5)
            .u32("tokenizer.ggml.eos_token_id", 99)
    };
    let after = ids(Builder::default().strs(TOKENS_KEY, &vocab(100)));
    let before = ids(Builder::default()).strs(TOKENS_KEY, &vocab(100));
    for b in [after, before] {
        let info = read_bytes(&b.build(0)).0.unwrap();
        assert_eq!(info.bos_token().as_deref(), Some("tok5"));
        assert_eq!(info.eos_token().as_deref(), Some("tok99"));
        assert!(matches!(
            &info.metadata[TOKENS_KEY],
            MetaValue::Array {
                len: 100,
                values: None,
                ..
            }
        ));
    }
    // Small vocabularies are kept whole; an out-of-range id resolves to None.
    let small = Builder::default()
        .strs(TOKENS_KEY, &vocab(3))
        .u32("tokenizer.ggml.bos_token_id", 1)
        .u32("tokenizer.ggml.eos_token_id", 7);
    let info = read_bytes(&small.build(0)).0.unwrap();
    assert_eq!(
        (info.bos_token().as_deref(), info.eos_token()),
        (Some("tok1"), None)
    );
}

#[test]
fn corrupt_headers_are_errors_not_panics() {
    let base = Builder::default().str("general.architecture", "llama");
    let unknown_tensor = base.tensor("blk.0.weird", &[32], 4, 0).build(64);
    let err = read_bytes(&unknown_tensor).0.unwrap_err();
    assert!(err.to_string().contains("blk.0.weird"), "{err}");

    let bad_key = Builder::default()
        .kv(b"bad\xff", 4, &1u32.to_le_bytes())
        .build(0);
    assert!(matches!(
        read_bytes(&bad_key).0,
        Err(GgufError::InvalidKey { .. })
    ));

    let bad_type = Builder::default().kv(b"k", 13, &[0; 8]).build(0);
    let err = read_bytes(&bad_type).0.unwrap_err();
    assert!(
        matches!(err, GgufError::UnknownValueType { value_type: 13, .. }),
        "{err}"
    );

    let mut huge_str = Vec::new();
    gstr(&mut huge_str, b"x");
    huge_str[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let huge = Builder::default().kv(b"k", T_STRING, &huge_str).build(0);
    assert!(matches!(
        read_bytes(&huge).0,
        Err(GgufError::Corrupt { .. })
    ));

    let mut huge_arr = 4u32.to_le_bytes().to_vec();
    huge_arr.extend((1u64 << 60).to_le_bytes());
    let huge = Builder::default().kv(b"k", T_ARRAY, &huge_arr).build(0);
    assert!(matches!(
        read_bytes(&huge).0,
        Err(GgufError::Corrupt { .. })
    ));

    let dims = Builder::default()
        .tensor("t", &[u64::MAX, 4], 0, 0)
        .build(0);
    assert!(matches!(
        read_bytes(&dims).0,
        Err(GgufError::Corrupt { .. })
    ));

    let mut v1 = Builder::default().build(0);
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    let err = read_bytes(&v1).0.unwrap_err();
    assert!(
        matches!(err, GgufError::UnsupportedVersion { version: 1, .. }),
        "{err}"
    );

    // Every prefix of a valid file fails cleanly (the loop is the fuzz test).
    let full = Builder::default()
        .strs(TOKENS_KEY, &vocab(70))
        .u32("tokenizer.ggml.eos_token_id", 69)
        .tensor("t", &[32], 2, 0)
        .build(18);
    for cut in 0..full.len() {
        assert!(read_bytes(&full[..cut]).0.is_err(), "prefix {cut} accepted");
    }
}

/// Issue 20: a well-formed header that lies about the model (a layer count patched to
/// 1000, heads that do not divide the embedding, a vocabulary that does not match the
/// embedding table) made llama.cpp abort the process; it is refused when read.
#[test]
fn issue_20_lying_hyperparameters_are_refused_before_llama_cpp() {
    let header = |layers: u32, heads: u32| {
        let mut b = Builder::default()
            .str("general.architecture", "llama")
            .u32("llama.block_count", layers)
            .u32("llama.embedding_length", 64)
            .u32("llama.attention.head_count", heads)
            .u32("llama.attention.head_count_kv", 2)
            .strs("tokenizer.ggml.tokens", &vocab(10))
            .tensor("token_embd.weight", &[64, 10], 0, 0);
        for i in 0..2 {
            b = b.tensor(
                &format!("blk.{i}.attn_q.weight"),
                &[64, 64],
                0,
                4096 + i * 16384,
            );
        }
        b.build(40_000)
    };
    let (ok, _f) = read_bytes(&header(2, 8));
    ok.expect("a consistent header reads");
    for (bytes, needle) in [
        (header(1000, 8), "expected 1 to 512"),
        (header(3, 8), "tensors for 2 layers"),
        (header(2, 6), "not a multiple of the 6 attention heads"),
        (header(2, 7), "cannot share"),
    ] {
        let (result, _f) = read_bytes(&bytes);
        let err = match result {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted a header that should fail with {needle}"),
        };
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(err.contains("does not match the model"), "{err}");
    }
    let bad_vocab = Builder::default()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("llama.embedding_length", 64)
        .strs("tokenizer.ggml.tokens", &vocab(11))
        .tensor("token_embd.weight", &[64, 10], 0, 0)
        .tensor("blk.0.attn_q.weight", &[64, 64], 0, 4096);
    let (result, _f) = read_bytes(&bad_vocab.build(40_000));
    let err = result.expect_err("refused").to_string();
    assert!(
        err.contains("11 tokens") && err.contains("10 rows"),
        "{err}"
    );

    // The real models are consistent.
    for name in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ] {
        GgufInfo::read(&model(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
