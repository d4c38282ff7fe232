//! Single-stream speed of the llama.cpp engine: prompt processing and generation tokens
//! per second for a prompt of an exact token length, measured end to end through the
//! engine a catalog model opens (tokenizing, sampling and detokenizing included). The CLI compares
//! these figures with llama.cpp's own timings for the same model, measured in the same
//! benchmark run.

use serde::{Deserialize, Serialize};

use crate::catalog::{KindSettings, ModelRef};
use crate::engine::{
    CancelToken, EngineError, EngineWorker, GenerationEvent, GenerationRequest, OpenOptions,
    WorkerEvent,
};
use crate::params::SamplingParams;
use crate::prompt::RenderedPrompt;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchConfig {
    pub threads: u32,
    pub prompt_tokens: usize,
    pub gen_tokens: u32,
    pub runs: usize,
    /// `--gpu-layers`, over the catalog's `gpu_layers`.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
}

impl BenchConfig {
    /// A context just large enough for the prompt and the generation.
    pub fn context_size(&self) -> u32 {
        u32::try_from(self.prompt_tokens)
            .unwrap_or(u32::MAX)
            .saturating_add(self.gen_tokens)
            .saturating_add(16)
            .max(512)
    }
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    pub prompt_tokens: u32,
    pub prompt_tokens_per_s: f64,
    pub gen_tokens: u32,
    pub gen_tokens_per_s: f64,
}

/// Text of neutral prose, repeated; cut to the exact token count by the model's tokenizer.
const FILLER: &str = "The committee met on a grey morning to review the harbour plans. \
Engineers described the new breakwater, the dredging schedule and the cost of steel. \
A fisherman asked whether the work would disturb the spring catch, and the chair promised \
a written answer before the next meeting. ";

/// Builds a prompt that tokenizes to exactly `tokens` tokens (BOS included) when it can;
/// returns the text and its real token count.
pub fn prompt_of_length(
    engine: &EngineWorker,
    tokens: usize,
) -> Result<(String, usize), EngineError> {
    let words: Vec<&str> = FILLER.split_whitespace().collect();
    let text_of = |n: usize| -> String {
        (0..n)
            .map(|i| words[i % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Binary search on the number of words, then accept the closest count not above.
    let (mut lo, mut hi) = (1usize, tokens.max(1).saturating_mul(2));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if engine.count_tokens(text_of(mid))? <= tokens {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let text = text_of(lo);
    let count = engine.count_tokens(text.clone())?;
    Ok((text, count))
}

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The prompt, for the reference to read the same text.
    pub prompt: String,
    pub runs: Vec<BenchRun>,
    /// Where the model ran (`Capabilities::runs_on`).
    pub runs_on: Option<String>,
    /// Why it did not run on the GPU it asked for.
    pub offload_note: Option<String>,
}

/// Loads the model (a GGUF file run by llama.cpp) and measures `config.runs`
/// generations of the same prompt.
pub fn run(model: &ModelRef, config: &BenchConfig) -> Result<Measured, EngineError> {
    let llama = model.entry.as_ref().filter(|e| e.runs_on_llama_cpp());
    let Some(entry) = llama else {
        return Err(EngineError::Load(format!(
            "`{}` is not a GGUF model run by llama.cpp, which is what `bench` compares with llama.cpp's own figures",
            model.name
        )));
    };
    let mut entry = entry.clone();
    if let KindSettings::Gguf(local) = &mut entry.settings {
        local.context_size = Some(config.context_size());
    }
    let model = ModelRef {
        name: model.name.clone(),
        entry: Some(entry),
    };
    let engine = crate::engine::open(
        &model,
        &OpenOptions::batch(Some(config.threads), Some(1)).with_gpu_layers(config.gpu_layers),
    )?;
    let (text, _) = prompt_of_length(&engine, config.prompt_tokens)?;
    let request = GenerationRequest {
        prompt: RenderedPrompt::Completion(text.clone()),
        params: SamplingParams {
            max_tokens: config.gen_tokens,
            ignore_eos: true,
            ..SamplingParams::default()
        },
        schema: None,
        grammar: None,
        tools: None,
    };
    let mut runs = Vec::new();
    // One unmeasured warm-up run pages the weights in, as llama-bench does.
    for index in 0..=config.runs {
        let mut outcome = None;
        let events = engine.generate(vec![request.clone()], CancelToken::new());
        while let Ok(WorkerEvent::Generation(event)) = events.recv() {
            if let GenerationEvent::Finished(_, result) = event {
                outcome = Some(result);
            }
        }
        let generation = outcome.ok_or_else(|| EngineError::Generation("no result".into()))??;
        if index > 0 {
            runs.push(BenchRun {
                prompt_tokens: generation.prompt_tokens,
                prompt_tokens_per_s: generation.prompt_tokens_per_s.unwrap_or(0.0),
                gen_tokens: generation.completion_tokens,
                gen_tokens_per_s: generation.tokens_per_s.unwrap_or(0.0),
            });
        }
    }
    let capabilities = engine.capabilities();
    Ok(Measured {
        prompt: text,
        runs,
        runs_on: capabilities.runs_on.clone(),
        offload_note: capabilities.offload_note.clone(),
    })
}

/// Median of a non-empty list; 0 for an empty one.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Peak resident memory of this process (VmHWM), in bytes, where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
