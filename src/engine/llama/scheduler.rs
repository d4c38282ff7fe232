//! Continuous batching. Up to `parallel` requests decode together as sequences of one
//! llama.cpp context: each step sends one batch holding the next token of every
//! generating sequence plus as many pending prompt tokens as fit, and a finished
//! sequence frees its slot for the next request at once.
//!
//! Prompt prefixes shared by consecutive requests (the system message and few-shot
//! examples of one prompt) are decoded once into a prefix sequence and shared into each
//! slot. The KV cache is unified, so sharing only tags the prefix cells with the slot's
//! sequence id: nothing is copied or decoded twice.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use super::{BATCH_SIZE, LlamaEngine, floor_char, take_utf8};
use crate::engine::{
    EngineError, FinishReason, Flow, Generation, GenerationEvent, GenerationRequest, cut_at_stop,
};

/// Shorter common prefixes are not worth a separate sequence.
const MIN_SHARED_PREFIX: usize = 16;

/// A request after rendering and tokenizing.
pub(super) struct Prepared {
    pub tokens: Vec<LlamaToken>,
    /// Index into the prefix groups.
    pub group: usize,
}

/// Consecutive requests whose prompts start with the same tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PrefixGroup {
    /// The request whose tokens hold the prefix.
    pub first: usize,
    /// Shared tokens (0 when the group has one member).
    pub len: usize,
}

/// Groups consecutive token sequences by their common prefix. The prefix always leaves
/// at least one token of each prompt to decode in its own sequence, since sampling
/// needs the logits of the prompt's last token.
pub(super) fn prefix_groups(prompts: &[Option<&[LlamaToken]>]) -> (Vec<PrefixGroup>, Vec<usize>) {
    let mut groups: Vec<PrefixGroup> = Vec::new();
    let mut members: Vec<usize> = Vec::new();
    let mut group_of = vec![0; prompts.len()];
    for (i, tokens) in prompts.iter().enumerate() {
        let Some(tokens) = tokens else {
            continue;
        };
        let group_count = groups.len();
        let joined = groups.last_mut().and_then(|group| {
            let first = prompts[group.first]?;
            let limit = if *members.last()? == 1 {
                first.len().saturating_sub(1)
            } else {
                group.len
            };
            let common = first
                .iter()
                .zip(tokens.iter())
                .take_while(|(a, b)| a == b)
                .count()
                .min(limit)
                .min(tokens.len().saturating_sub(1));
            // Joining may shorten the shared prefix a little (cases whose variable text
            // happens to start alike), but not a lot: the zero-shot and few-shot variants
            // of a prompt share a system message, yet each has a much longer prefix of its own.
            let shrinks_a_lot = limit == group.len && common * 4 < group.len * 3;
            (common >= MIN_SHARED_PREFIX && !shrinks_a_lot).then(|| {
                group.len = common;
                group_count - 1
            })
        });
        match joined {
            Some(index) => {
                group_of[i] = index;
                if let Some(count) = members.last_mut() {
                    *count += 1;
                }
            }
            None => {
                groups.push(PrefixGroup { first: i, len: 0 });
                members.push(1);
                group_of[i] = groups.len() - 1;
            }
        }
    }
    for (group, count) in groups.iter_mut().zip(&members) {
        if *count < 2 {
            group.len = 0;
        }
    }
    (groups, group_of)
}

/// One request in flight.
struct Slot {
    seq: i32,
    request: usize,
    sampler: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// Tokens of this sequence already in the KV cache (its next position).
    n_past: usize,
    /// Next prompt token to decode.
    prompt_next: usize,
    /// Sampled token waiting to be decoded.
    next_token: Option<LlamaToken>,
    /// Generated tokens sent to the KV cache, in order (only when the cache is kept).
    decoded: Vec<LlamaToken>,
    /// Batch index of this slot's logits in the current step.
    logits_at: Option<i32>,
    output: String,
    pending: Vec<u8>,
    completion_tokens: u32,
    decoded_prompt_tokens: usize,
    started: Instant,
    prompt_done: Option<Instant>,
    first_token: Option<Instant>,
}

impl Slot {
    /// A slot whose sequence already holds `n_past` tokens of its prompt.
    fn new(
        seq: i32,
        request: usize,
        sampler: LlamaSampler,
        grammar: Option<LlamaSampler>,
        n_past: usize,
    ) -> Slot {
        Slot {
            seq,
            request,
            sampler,
            grammar,
            n_past,
            prompt_next: n_past,
            next_token: None,
            decoded: Vec::new(),
            logits_at: None,
            output: String::new(),
            pending: Vec::new(),
            completion_tokens: 0,
            decoded_prompt_tokens: 0,
            started: Instant::now(),
            prompt_done: None,
            first_token: None,
        }
    }
}

pub(super) struct Scheduler<'a, 'm> {
    pub engine: &'a LlamaEngine,
    pub ctx: &'a mut LlamaContext<'m>,
    pub requests: &'a [GenerationRequest],
    pub prepared: Vec<Option<Prepared>>,
    pub groups: Vec<PrefixGroup>,
    pub parallel: usize,
    pub context_size: usize,
    /// A lone request whose sequence 0 stays in the cache afterwards, for the next one.
    pub keep: bool,
    /// Prompt tokens of the lone request already in sequence 0 (kept from the last one).
    pub resume_from: usize,
}

impl Scheduler<'_, '_> {
    fn prefix_seq(&self) -> i32 {
        self.parallel as i32
    }

    /// Runs every prepared request to completion (or until the callback says stop).
    /// Returns the tokens sequence 0 holds afterwards when it is kept (else none).
    pub fn run(mut self, on_event: &mut dyn FnMut(GenerationEvent) -> Flow) -> Vec<LlamaToken> {
        let mut in_cache = match self.prepared.first() {
            Some(Some(prepared)) if self.keep => prepared.tokens[..self.resume_from].to_vec(),
            _ => Vec::new(),
        };
        self.schedule(&mut in_cache, on_event);
        in_cache
    }

    fn schedule(
        &mut self,
        in_cache: &mut Vec<LlamaToken>,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let mut batch = LlamaBatch::new(BATCH_SIZE as usize, self.parallel as i32 + 1);
        let mut slots: Vec<Option<Slot>> = (0..self.parallel).map(|_| None).collect();
        let runnable: Vec<usize> = (0..self.requests.len())
            .filter(|i| self.prepared[*i].is_some())
            .collect();
        let mut queue = runnable.into_iter();
        let mut loaded_prefix: Option<usize> = None;
        let mut stopping = false;

        loop {
            // Admit queued requests into free slots.
            if !stopping {
                for (seq, entry) in slots.iter_mut().enumerate() {
                    if entry.is_some() {
                        continue;
                    }
                    let Some(request) = queue.next() else { break };
                    if on_event(GenerationEvent::Started(request)) == Flow::Stop {
                        // Every started request gets a Finished event, even one cancelled
                        // before its first token.
                        let _ = on_event(GenerationEvent::Finished(request, Ok(cancelled())));
                        stopping = true;
                        break;
                    }
                    match self.admit(request, seq, &mut batch, &mut loaded_prefix) {
                        Ok(slot) => *entry = Some(slot),
                        Err(err) => {
                            if on_event(GenerationEvent::Finished(request, Err(err))) == Flow::Stop
                            {
                                stopping = true;
                                break;
                            }
                        }
                    }
                }
            }
            if stopping {
                self.cancel_all(&mut slots, in_cache, on_event);
                return;
            }
            if slots.iter().all(Option::is_none) {
                return;
            }

            // One batch: generating sequences first (one token each), then prompt tokens.
            batch.clear();
            let mut budget = BATCH_SIZE as usize;
            let mut add_failed = None;
            let keep = self.keep;
            for slot in slots.iter_mut().flatten() {
                slot.logits_at = None;
                if let Some(token) = slot.next_token.take() {
                    if let Err(e) = batch.add(token, slot.n_past as i32, &[slot.seq], true) {
                        add_failed = Some(e.to_string());
                    }
                    if keep {
                        slot.decoded.push(token);
                    }
                    slot.logits_at = Some(batch.n_tokens() - 1);
                    slot.n_past += 1;
                    budget -= 1;
                }
            }
            for slot in slots.iter_mut().flatten() {
                let tokens = &self.prepared[slot.request].as_ref().map(|p| &p.tokens);
                let Some(tokens) = tokens else { continue };
                if slot.prompt_next >= tokens.len() || budget == 0 {
                    continue;
                }
                let take = (tokens.len() - slot.prompt_next).min(budget);
                for (j, token) in tokens[slot.prompt_next..slot.prompt_next + take]
                    .iter()
                    .enumerate()
                {
                    let last = slot.prompt_next + j + 1 == tokens.len();
                    if let Err(e) = batch.add(*token, (slot.n_past + j) as i32, &[slot.seq], last) {
                        add_failed = Some(e.to_string());
                    }
                    if last {
                        slot.logits_at = Some(batch.n_tokens() - 1);
                    }
                }
                slot.prompt_next += take;
                slot.n_past += take;
                slot.decoded_prompt_tokens += take;
                budget -= take;
            }
            let decoded = match add_failed {
                Some(message) => Err(message),
                None => self.ctx.decode(&mut batch).map_err(|e| e.to_string()),
            };
            if let Err(message) = decoded {
                // The step is lost for every sequence in it; fail them and go on with the rest.
                in_cache.clear();
                for entry in slots.iter_mut() {
                    if let Some(slot) = entry.take() {
                        self.release(slot.seq);
                        let err =
                            EngineError::Generation(format!("llama.cpp decode failed: {message}"));
                        if on_event(GenerationEvent::Finished(slot.request, Err(err))) == Flow::Stop
                        {
                            stopping = true;
                        }
                    }
                }
                if stopping {
                    return;
                }
                continue;
            }

            let now = Instant::now();
            for entry in slots.iter_mut() {
                let Some(slot) = entry.as_mut() else {
                    continue;
                };
                let Some(index) = slot.logits_at else {
                    continue;
                };
                slot.prompt_done.get_or_insert(now);
                let (finish, flow) = self.sample(slot, index, on_event);
                if flow == Flow::Stop {
                    stopping = true;
                }
                if let Some(finish) = finish.or(stopping.then_some(FinishReason::Cancelled))
                    && let Some(slot) = entry.take()
                    && self.finish(slot, finish, in_cache, on_event) == Flow::Stop
                {
                    stopping = true;
                }
            }
        }
    }

    fn admit(
        &mut self,
        request: usize,
        seq: usize,
        batch: &mut LlamaBatch<'_>,
        loaded_prefix: &mut Option<usize>,
    ) -> Result<Slot, EngineError> {
        let (sampler, grammar) = self.engine.sampler(&self.requests[request])?;
        let seq = seq as i32;
        if self.keep && self.resume_from > 0 {
            // Sequence 0 already holds this prompt's start.
            return Ok(Slot::new(seq, request, sampler, grammar, self.resume_from));
        }
        self.release(seq);
        let group_index = self.prepared[request]
            .as_ref()
            .map(|p| p.group)
            .unwrap_or(0);
        let prefix_len = self.groups.get(group_index).map(|g| g.len).unwrap_or(0);
        let mut n_past = 0;
        if prefix_len > 0 {
            if *loaded_prefix != Some(group_index) {
                self.load_prefix(group_index, batch)?;
                *loaded_prefix = Some(group_index);
            }
            self.ctx
                .kv_cache_seq_cp(self.prefix_seq(), seq, Some(0), Some(prefix_len as u32))
                .map_err(|e| {
                    EngineError::Generation(format!("cannot share the prompt prefix: {e}"))
                })?;
            n_past = prefix_len;
        }
        Ok(Slot::new(seq, request, sampler, grammar, n_past))
    }

    /// Decodes a group's shared prefix into the prefix sequence, replacing the previous one
    /// (slots that shared it keep their cells: they are tagged with their own ids too).
    fn load_prefix(
        &mut self,
        group_index: usize,
        batch: &mut LlamaBatch<'_>,
    ) -> Result<(), EngineError> {
        let group = self.groups[group_index].clone();
        let prefix_seq = self.prefix_seq();
        self.release(prefix_seq);
        let Some(Some(first)) = self.prepared.get(group.first) else {
            return Err(EngineError::Generation(
                "prefix group without a prompt".into(),
            ));
        };
        let tokens = first.tokens[..group.len].to_vec();
        for (chunk_index, chunk) in tokens.chunks(BATCH_SIZE as usize).enumerate() {
            batch.clear();
            for (j, token) in chunk.iter().enumerate() {
                let pos = chunk_index * BATCH_SIZE as usize + j;
                batch
                    .add(*token, pos as i32, &[prefix_seq], false)
                    .map_err(|e| EngineError::Generation(e.to_string()))?;
            }
            self.ctx
                .decode(batch)
                .map_err(|e| EngineError::Generation(format!("llama.cpp decode failed: {e}")))?;
        }
        Ok(())
    }

    /// Samples the slot's next token and applies the stopping rules.
    fn sample(
        &mut self,
        slot: &mut Slot,
        index: i32,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> (Option<FinishReason>, Flow) {
        let request = &self.requests[slot.request];
        let vocab = self.engine.model().vocab();
        let token = pick_token(self.ctx, slot, index, vocab.eos());
        slot.first_token.get_or_insert_with(Instant::now);
        if vocab.is_eog(token) && !request.params.ignore_eos {
            return (Some(FinishReason::EndOfText), Flow::Continue);
        }
        slot.completion_tokens += 1;
        // A raw grammar matches special tokens (`<tool_call>`) by their text, so the
        // text returned must show them too, or the caller could not tell what matched.
        let special = request.grammar.is_some();
        slot.pending
            .extend(vocab.token_to_piece(token, special, None));
        let piece = take_utf8(&mut slot.pending);
        let longest_stop = request
            .params
            .stop
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        let searched_from =
            floor_char(&slot.output, slot.output.len().saturating_sub(longest_stop));
        slot.output.push_str(&piece);
        if let Some(cut) = cut_at_stop(&slot.output[searched_from..], &request.params.stop) {
            slot.output.truncate(searched_from + cut);
            slot.pending.clear();
            return (Some(FinishReason::StopSequence), Flow::Continue);
        }
        let flow = if piece.is_empty() {
            Flow::Continue
        } else {
            on_event(GenerationEvent::Token(slot.request, piece))
        };
        if flow == Flow::Stop {
            return (Some(FinishReason::Cancelled), flow);
        }
        if slot.completion_tokens >= request.params.max_tokens
            || slot.n_past + 1 >= self.context_size
        {
            return (Some(FinishReason::Length), flow);
        }
        slot.next_token = Some(token);
        (None, flow)
    }

    fn finish(
        &mut self,
        mut slot: Slot,
        finish: FinishReason,
        in_cache: &mut Vec<LlamaToken>,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> Flow {
        if self.keep && slot.seq == 0 {
            // What the sequence holds: the prompt as far as it was read, then the
            // generated tokens that were decoded (the last one sampled never is).
            *in_cache = self.prepared[slot.request]
                .as_ref()
                .map(|p| p.tokens.clone())
                .unwrap_or_default();
            in_cache.extend(&slot.decoded);
            in_cache.truncate(slot.n_past);
        } else {
            self.release(slot.seq);
        }
        if finish != FinishReason::StopSequence {
            let rest = String::from_utf8_lossy(&slot.pending).into_owned();
            slot.output.push_str(&rest);
        }
        let end = Instant::now();
        let prompt_done = slot.prompt_done.unwrap_or(end);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let prompt_secs = (prompt_done - slot.started).as_secs_f64();
        let gen_secs = (end - prompt_done).as_secs_f64();
        let prompt_tokens = self.prepared[slot.request]
            .as_ref()
            .map(|p| p.tokens.len())
            .unwrap_or(0);
        let generation = Generation {
            text: slot.output,
            finish,
            prompt_tokens: prompt_tokens as u32,
            completion_tokens: slot.completion_tokens,
            ttft_ms: ms(slot.first_token.unwrap_or(end) - slot.started),
            total_ms: ms(end - slot.started),
            prompt_tokens_per_s: (prompt_secs > 0.0 && slot.decoded_prompt_tokens > 0)
                .then(|| slot.decoded_prompt_tokens as f64 / prompt_secs),
            tokens_per_s: (gen_secs > 0.0 && slot.completion_tokens > 0)
                .then(|| slot.completion_tokens as f64 / gen_secs),
            cached_prompt_tokens: prompt_tokens.saturating_sub(slot.decoded_prompt_tokens) as u32,
        };
        on_event(GenerationEvent::Finished(slot.request, Ok(generation)))
    }

    fn cancel_all(
        &mut self,
        slots: &mut [Option<Slot>],
        in_cache: &mut Vec<LlamaToken>,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        for slot in slots.iter_mut() {
            if let Some(slot) = slot.take() {
                let _ = self.finish(slot, FinishReason::Cancelled, in_cache, on_event);
            }
        }
    }

    /// Frees a sequence's KV cells (shared prefix cells stay for their other owners).
    fn release(&mut self, seq: i32) {
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    }
}

fn cancelled() -> Generation {
    Generation::cancelled(String::new())
}

/// The chain's choice, constrained by the grammar when there is one. As in llama.cpp's
/// common sampler, the grammar first only checks the chosen token; the full-vocabulary
/// mask runs only when that token is not allowed.
fn pick_token(ctx: &LlamaContext<'_>, slot: &mut Slot, index: i32, eos: LlamaToken) -> LlamaToken {
    let Some(grammar) = slot.grammar.as_mut() else {
        // sample() applies the chain and accepts the token into it.
        return slot.sampler.sample(ctx, index);
    };
    let mut candidates = ctx.token_data_array_ith(index);
    candidates.apply_sampler(&mut slot.sampler);
    let chosen = candidates.selected_token();
    let allowed = chosen.is_some_and(|token| {
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        single.apply_sampler(grammar);
        single.data.first().is_some_and(|d| d.logit().is_finite())
    });
    let token = match (allowed, chosen) {
        (true, Some(token)) => token,
        _ => {
            let mut candidates = ctx.token_data_array_ith(index);
            candidates.apply_sampler(grammar);
            candidates.apply_sampler(&mut slot.sampler);
            // A grammar always allows some token; end of text is the safe fallback.
            candidates.selected_token().unwrap_or(eos)
        }
    };
    grammar.accept(token);
    slot.sampler.accept(token);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|i| LlamaToken(*i)).collect()
    }

    #[test]
    fn consecutive_prompts_with_a_long_common_start_share_it() {
        let base: Vec<i32> = (0..40).collect();
        let a = toks(&[base.clone(), vec![100, 101]].concat());
        let b = toks(&[base.clone(), vec![200]].concat());
        let c = toks(&[base[..35].to_vec(), vec![300, 301]].concat());
        let other = toks(&(500..530).collect::<Vec<_>>());
        let prompts = [
            Some(&a[..]),
            Some(&b[..]),
            Some(&c[..]),
            None,
            Some(&other[..]),
        ];
        let (groups, group_of) = prefix_groups(&prompts);
        assert_eq!(
            groups,
            vec![
                PrefixGroup { first: 0, len: 35 },
                PrefixGroup { first: 4, len: 0 }
            ]
        );
        assert_eq!(group_of, vec![0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_much_shorter_common_prefix_starts_a_new_group() {
        let system: Vec<i32> = (0..20).collect();
        let few_shot =
            |tail: i32| toks(&[system.clone(), (100..160).collect(), vec![tail, 1]].concat());
        let zero_shot = |tail: i32| toks(&[system.clone(), vec![tail, 1]].concat());
        let prompts = [
            few_shot(7),
            few_shot(8),
            few_shot(9),
            zero_shot(7),
            zero_shot(8),
        ];
        let views: Vec<Option<&[LlamaToken]>> = prompts.iter().map(|p| Some(&p[..])).collect();
        let (groups, group_of) = prefix_groups(&views);
        assert_eq!(
            groups,
            vec![
                PrefixGroup { first: 0, len: 80 },
                PrefixGroup { first: 3, len: 20 }
            ]
        );
        assert_eq!(group_of, vec![0, 0, 0, 1, 1]);
    }

    #[test]
    fn a_prompt_never_shares_its_last_token() {
        let a = toks(&(0..30).collect::<Vec<_>>());
        let (groups, _) = prefix_groups(&[Some(&a[..]), Some(&a[..])]);
        assert_eq!(groups[0].len, 29);
    }
}
