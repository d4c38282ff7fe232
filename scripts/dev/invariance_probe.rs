// Dev probe for issue 18 (not built by cargo). To use: mkdir examples && cp scripts/dev/invariance_probe.rs examples/ &&
// cargo build --locked --features mistralrs --all-targets; then
// STEPS=16 target/debug/examples/invariance_probe MODEL.gguf 8
// Settings: GGML_CPU_TILED_MM=0 / GGML_CPU_TILED_MM_FORCE=1 (ggml's tiled K-quant kernel);
// EXTRA=1 loads with llama.cpp's extra (repacked) buffer types, OVERRIDE=1 with a CPU
// buffer-type override instead (which, in this llama.cpp, still repacks); LONE_CTX1=1 runs
// the lone sequence in a one-stream context; LONG=45 makes the last prompt ~600 tokens;
// SPLITS=1 instead compares each prompt read whole with it read in two decodes split at
// every position.
//! Dev probe for batch invariance (issue 18): decodes one token for sequence 0 alone and
//! beside other sequences, and prints the first graph tensor whose sequence-0 slice differs.
//! Usage: cargo run --example invariance_probe -- MODEL.gguf N_OTHERS
#![allow(clippy::all)]
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::raw::c_void;

use llama_cpp_sys_2 as sys;

#[derive(Default)]
struct Capture {
    tensors: BTreeMap<String, (Vec<i64>, Vec<f32>)>,
    order: Vec<String>,
    on: bool,
}

unsafe extern "C" fn cb(t: *mut sys::ggml_tensor, ask: bool, ud: *mut c_void) -> bool {
    let cap = &mut *(ud as *mut Capture);
    if ask {
        return cap.on;
    }
    if !cap.on {
        return true;
    }
    let t = &*t;
    if t.type_ != sys::GGML_TYPE_F32 {
        return true;
    }
    let name = std::ffi::CStr::from_ptr(t.name.as_ptr()).to_string_lossy().into_owned();
    let op = std::ffi::CStr::from_ptr(sys::ggml_op_desc(t)).to_string_lossy().into_owned();
    let src0 = if t.src[0].is_null() { String::new() } else { format!("{}:{}", std::ffi::CStr::from_ptr((*t.src[0]).name.as_ptr()).to_string_lossy(), (*t.src[0]).type_) };
    let name = format!("{name} [{op} {src0}]");
    let n = sys::ggml_nbytes(t);
    let mut buf = vec![0f32; n / 4];
    sys::ggml_backend_tensor_get(t, buf.as_mut_ptr() as *mut c_void, 0, n);
    // Non-contiguous tensors: read with strides.
    let ne: Vec<i64> = t.ne.to_vec();
    let nb: Vec<usize> = t.nb.to_vec();
    let mut vals = Vec::new();
    let bytes = std::slice::from_raw_parts(buf.as_ptr() as *const u8, n);
    for i3 in 0..ne[3] {
        for i2 in 0..ne[2] {
            for i1 in 0..ne[1] {
                for i0 in 0..ne[0] {
                    let off = i0 as usize * nb[0] + i1 as usize * nb[1] + i2 as usize * nb[2] + i3 as usize * nb[3];
                    if off + 4 <= n {
                        vals.push(f32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap()));
                    } else {
                        vals.push(f32::NAN);
                    }
                }
            }
        }
    }
    let key = if cap.tensors.contains_key(&name) { format!("{name}#{}", cap.order.len()) } else { name };
    cap.order.push(key.clone());
    cap.tensors.insert(key, (ne, vals));
    true
}

fn tokenize(vocab: *const sys::llama_vocab, text: &str) -> Vec<i32> {
    let c = CString::new(text).unwrap();
    let mut out = vec![0i32; text.len() + 16];
    let n = unsafe { sys::llama_tokenize(vocab, c.as_ptr(), text.len() as i32, out.as_mut_ptr(), out.len() as i32, true, true) };
    out.truncate(n as usize);
    out
}

unsafe fn decode(ctx: *mut sys::llama_context, items: &[(i32, i32, i32, bool)]) {
    // (token, pos, seq, logits)
    let mut batch = sys::llama_batch_init(items.len() as i32, 0, 1);
    for (i, &(tok, pos, seq, lg)) in items.iter().enumerate() {
        *batch.token.add(i) = tok;
        *batch.pos.add(i) = pos;
        *batch.n_seq_id.add(i) = 1;
        *(*batch.seq_id.add(i)).add(0) = seq;
        *batch.logits.add(i) = lg as i8;
    }
    batch.n_tokens = items.len() as i32;
    let r = sys::llama_decode(ctx, batch);
    assert_eq!(r, 0, "decode failed");
    sys::llama_batch_free(batch);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = CString::new(args[1].clone()).unwrap();
    let others: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let threads: i32 = std::env::var("THREADS").ok().map(|s| s.parse().unwrap()).unwrap_or(2);
    unsafe {
        sys::llama_backend_init();
        let mut mp = sys::llama_model_default_params();
        if std::env::var("OVERRIDE").is_ok() {
            let ov = Box::leak(Box::new([
                sys::llama_model_tensor_buft_override { pattern: c".".as_ptr(), buft: sys::ggml_backend_cpu_buffer_type() },
                sys::llama_model_tensor_buft_override { pattern: std::ptr::null(), buft: std::ptr::null_mut() },
            ]));
            mp.tensor_buft_overrides = ov.as_ptr();
        } else if std::env::var("EXTRA").is_err() {
            mp.use_extra_bufts = false;
        }
        let model = sys::llama_model_load_from_file(path.as_ptr(), mp);
        let vocab = sys::llama_model_get_vocab(model);
        let prompts = [
            "<|im_start|>system\nYou answer in JSON.<|im_end|>\n<|im_start|>user\nHow many grams in a tonne?<|im_end|>\n<|im_start|>assistant\n{\"answer\": ",
            "<|im_start|>user\nWrite a haiku about autumn leaves falling slowly.<|im_end|>\n<|im_start|>assistant\n",
            "<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n",
            "The capital of France is",
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nName three primes.<|im_end|>\n<|im_start|>assistant\n",
            "def fibonacci(n):\n    ",
            "Once upon a time, in a land far away, there lived",
            "<|im_start|>user\nTranslate 'good morning' to German.<|im_end|>\n<|im_start|>assistant\n",
            "1, 2, 3, 4, 5,",
        ];
        let mut toks: Vec<Vec<i32>> = prompts.iter().map(|p| tokenize(vocab, p)).collect();
        if let Ok(n) = std::env::var("LONG") {
            let long = "The river runs past the old mill and under the stone bridge. ".repeat(n.parse().unwrap());
            let last = toks.len() - 1;
            toks[last] = tokenize(vocab, &long);
            println!("long prompt: {} tokens", toks[last].len());
        }
        let n_seq = (others + 1).min(toks.len() * 4);
        let slots = n_seq as u32;
        let steps: usize = std::env::var("STEPS").ok().map(|s| s.parse().unwrap()).unwrap_or(24);
        let nv = sys::llama_vocab_n_tokens(vocab) as usize;
        let new_ctx = |cap: &mut Capture, slots: u32| {
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = 1024 * slots;
            cp.n_seq_max = slots;
            cp.kv_unified = false;
            cp.n_batch = 512;
            cp.n_ubatch = 512;
            cp.n_threads = threads;
            cp.n_threads_batch = threads;
            cp.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
            cp.cb_eval = Some(cb);
            cp.cb_eval_user_data = cap as *mut Capture as *mut c_void;
            sys::llama_init_from_model(model, cp)
        };
        let argmax = |l: &[f32]| l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32;
        let prompt_of = |s: usize| toks[s % toks.len()].clone();
        // Greedy trajectories, with logits at each step, decoding `active` sequences together.
        // Returns per sequence: Vec<(token fed, logits)>.
        let trajectories = |active: &[usize], capture_at: Option<usize>, cap: &mut Capture| -> Vec<Vec<Vec<f32>>> {
            let ctx = new_ctx(cap, if active.len() == 1 && std::env::var("LONE_CTX1").is_ok() { 1 } else { slots });
            let mut out = vec![Vec::new(); active.len()];
            let mut next = Vec::new();
            for (slot, &s) in active.iter().enumerate() {
                let t = prompt_of(s);
                let items: Vec<_> = t[..t.len() - 1].iter().enumerate().map(|(i, &tk)| (tk, i as i32, slot as i32, false)).collect();
                for chunk in items.chunks(512) { decode(ctx, chunk); }
                next.push((t[t.len() - 1], (t.len() - 1) as i32));
            }
            for step in 0..steps {
                let items: Vec<_> = next.iter().enumerate().map(|(slot, &(tk, pos))| (tk, pos, slot as i32, true)).collect();
                cap.on = capture_at == Some(step);
                decode(ctx, &items);
                cap.on = false;
                for slot in 0..active.len() {
                    let lg = std::slice::from_raw_parts(sys::llama_get_logits_ith(ctx, slot as i32), nv).to_vec();
                    let tk = argmax(&lg);
                    out[slot].push(lg);
                    next[slot] = (tk, next[slot].1 + 1);
                }
            }
            sys::llama_free(ctx);
            out
        };
        if std::env::var("SPLITS").is_ok() {
            let nv = nv;
            let mut dummy = Capture::default();
            for (pi, t) in toks.iter().enumerate() {
                let run = |split: usize, cap: &mut Capture| -> Vec<f32> {
                    let ctx = new_ctx(cap, 1);
                    let items: Vec<_> = t.iter().enumerate().map(|(i, &tk)| (tk, i as i32, 0, i == t.len() - 1)).collect();
                    if split > 0 { decode(ctx, &items[..split]); }
                    decode(ctx, &items[split..]);
                    let lg = std::slice::from_raw_parts(sys::llama_get_logits_ith(ctx, -1), nv).to_vec();
                    sys::llama_free(ctx);
                    lg
                };
                let whole = run(0, &mut dummy);
                let mut bad = Vec::new();
                for split in 1..t.len() {
                    let l = run(split, &mut dummy);
                    if l.iter().zip(&whole).any(|(a, b)| a.to_bits() != b.to_bits()) { bad.push(split); }
                }
                println!("prompt {pi} ({} tokens): splits differing from whole: {:?}", t.len(), bad);
            }
            return;
        }
        let all: Vec<usize> = (0..n_seq).collect();
        let mut dummy = Capture::default();
        let batched = trajectories(&all, None, &mut dummy);
        let mut hash: u64 = 1469598103934665603;
        for s in &batched { for st in s { for v in st { hash = (hash ^ v.to_bits() as u64).wrapping_mul(1099511628211); } } }
        println!("batched logits hash {hash:016x}");
        if std::env::var("HASH_ONLY").is_ok() { return; }
        let mut first: Option<(usize, usize)> = None;
        for s in 0..n_seq {
            let lone = trajectories(&[s], None, &mut dummy);
            let bad = (0..steps).find(|&st| lone[0][st].iter().zip(&batched[s][st]).any(|(a, b)| a.to_bits() != b.to_bits()));
            let same_tokens = (0..steps).all(|st| argmax(&lone[0][st]) == argmax(&batched[s][st]));
            println!("seq {s}: first differing step {bad:?}; greedy tokens same: {same_tokens}");
            if first.is_none() { if let Some(st) = bad { first = Some((s, st)); } }
        }
        let Some((s, st)) = first else { println!("all identical"); return; };
        let mut lone = Capture::default();
        trajectories(&[s], Some(st), &mut lone);
        let mut many = Capture::default();
        trajectories(&all, Some(st), &mut many);
        let row = s as i64;
        let mut shown = 0;
        for key in &lone.order {
            let (ne_a, va) = &lone.tensors[key];
            let Some((ne_b, vb)) = many.tensors.get(key) else { continue };
            let grown: Vec<usize> = (0..4).filter(|&d| ne_a[d] != ne_b[d]).collect();
            let slice: Vec<f32> = if grown.is_empty() {
                vb.clone()
            } else if grown.len() == 1 && ne_a[grown[0]] == 1 && ne_b[grown[0]] == n_seq as i64 {
                let d = grown[0];
                let mut out = Vec::new();
                for i3 in 0..ne_b[3] { for i2 in 0..ne_b[2] { for i1 in 0..ne_b[1] { for i0 in 0..ne_b[0] {
                    let idx = [i0, i1, i2, i3];
                    if idx[d] != row { continue; }
                    let flat = i0 + ne_b[0] * (i1 + ne_b[1] * (i2 + ne_b[2] * i3));
                    out.push(vb[flat as usize]);
                }}}}
                out
            } else {
                continue;
            };
            let nd = va.iter().zip(&slice).filter(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan())).count();
            println!("{key}: {ne_a:?} vs {ne_b:?}: {nd} of {} differ", va.len());
            shown += 1;
            if shown > 40 { break; }
        }
        println!("tensors compared: {}", lone.order.len());
    }
}
