//! Continuous batching over a [`Pool`]. Each step decodes one batch: the next token of
//! every generating sequence plus as many waiting prompt tokens as fit. A request is
//! admitted as soon as a slot is free, at the next step, whether it came with the batch
//! or arrived later through a [`RequestFeed`].
//!
//! A new prompt starts from the longest start it shares with what a slot already holds:
//! its own free slot's last conversation, or the prompt another sequence is decoding
//! (few-shot examples and system messages are decoded once, then copied). Every token's
//! arithmetic is the same whatever else is in the batch (one KV stream per sequence, and
//! kernels that do not change with the number of rows), so where a prompt's start comes
//! from never changes what it generates.

use std::collections::VecDeque;
use std::time::Instant;

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

mod sampling;

use super::pool::{Pool, common_start};
use super::{BATCH_SIZE, LlamaEngine, floor_char, take_utf8};
use crate::engine::{
    EngineError, FinishReason, Flow, Generation, GenerationEvent, GenerationRequest, RequestFeed,
    cut_at_stop,
};
use sampling::{pick_token, token_logprob};

/// A shared start shorter than this is decoded again rather than copied from another
/// slot: copying a stream costs about as much as decoding a few tokens.
const MIN_COPIED_PREFIX: usize = 16;

/// A request waiting for a slot, rendered and tokenized.
pub(super) struct Queued {
    pub index: usize,
    pub request: GenerationRequest,
    pub tokens: Vec<LlamaToken>,
}

/// One request in flight.
struct Sequence {
    slot: usize,
    queued: Queued,
    sampler: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// Next prompt token to decode.
    prompt_next: usize,
    /// Sampled token waiting to be decoded.
    next_token: Option<LlamaToken>,
    /// Batch index of this sequence's logits in the current step.
    logits_at: Option<i32>,
    output: String,
    pending: Vec<u8>,
    completion_tokens: u32,
    /// The generated tokens' log-probabilities, when the request asks for them.
    logprobs: Option<Vec<f64>>,
    /// Prompt tokens found in the cache (not decoded for this request).
    reused_prompt_tokens: usize,
    /// The slot was filled by a copy that llama.cpp performs at the next decode; until
    /// then its cells are not what the pool says.
    copy_pending: bool,
    started: Instant,
    prompt_done: Option<Instant>,
    first_token: Option<Instant>,
    /// Why the sequence cannot go on, reported instead of its generation.
    failed: Option<EngineError>,
}

/// Where an admitted prompt's start comes from.
enum Start {
    /// The slot's own cache, cut to this many tokens.
    Own(usize),
    /// Another slot's cache, copied and cut to this many tokens.
    Copy { from: usize, keep: usize },
}

/// The parts of a step: each prompt still being read, then the next token of every
/// generating sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The prompt of the sequence in this slot (up to one batch of it).
    Prompt(usize),
    Tokens,
}

enum Plan {
    Admit {
        slot: usize,
        start: Start,
    },
    /// A longer shared start is still being decoded by another sequence: wait a step.
    Wait,
    /// No free slot.
    Full,
}

pub(super) struct Scheduler<'a, 'm, 'f> {
    pub engine: &'a LlamaEngine,
    pub pool: &'a mut Pool<'m>,
    /// Requests waiting for a slot, in order.
    pub queue: VecDeque<Queued>,
    /// Where later requests come from; `None` for a fixed batch or once the feed closed.
    pub feed: Option<&'a mut (dyn RequestFeed + 'f)>,
    /// Requests taken so far: the next one's index.
    pub taken: usize,
    /// The most tokens a sequence may hold (the context window).
    pub context_size: usize,
}

type Active = Vec<Option<Box<Sequence>>>;

impl Scheduler<'_, '_, '_> {
    /// Runs until every request is done and the feed (if any) has closed, or the callback
    /// says stop (every sequence in flight then finishes as cancelled).
    pub fn run(mut self, on_event: &mut dyn FnMut(GenerationEvent) -> Flow) {
        let mut batch = LlamaBatch::new(BATCH_SIZE as usize, 1);
        let mut active: Active = (0..self.pool.slots()).map(|_| None).collect();
        loop {
            let idle = self.queue.is_empty() && active.iter().all(Option::is_none);
            if self.intake(idle, on_event) == Flow::Stop
                || self.admit_waiting(&mut active, on_event) == Flow::Stop
            {
                return self.cancel_all(&mut active, on_event);
            }
            if active.iter().all(Option::is_none) {
                if self.queue.is_empty() && self.feed.is_none() {
                    return;
                }
                continue;
            }
            if self.step(&mut batch, &mut active, on_event) == Flow::Stop {
                return self.cancel_all(&mut active, on_event);
            }
        }
    }

    /// Takes what the feed has waiting; when there is nothing else to do, waits for it.
    fn intake(&mut self, idle: bool, on_event: &mut dyn FnMut(GenerationEvent) -> Flow) -> Flow {
        let mut wait = idle;
        loop {
            let Some(feed) = self.feed.as_mut() else {
                return Flow::Continue;
            };
            let Some(request) = feed.next_request(wait) else {
                if wait {
                    self.feed = None;
                }
                return Flow::Continue;
            };
            wait = false;
            let index = self.taken;
            self.taken += 1;
            match self.engine.prepare(&request) {
                Ok(tokens) => self.queue.push_back(Queued {
                    index,
                    request,
                    tokens,
                }),
                Err(err) => {
                    if on_event(GenerationEvent::Finished(index, Err(err))) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
    }

    fn abandoned(&self, index: usize) -> bool {
        self.feed.as_ref().is_some_and(|feed| feed.abandoned(index))
    }

    /// Admits queued requests into free slots, in order.
    fn admit_waiting(
        &mut self,
        active: &mut Active,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> Flow {
        while let Some(front) = self.queue.front() {
            if self.abandoned(front.index) {
                let index = front.index;
                self.queue.pop_front();
                if on_event(GenerationEvent::Finished(index, Ok(cancelled()))) == Flow::Stop {
                    return Flow::Stop;
                }
                continue;
            }
            let (slot, start) = match self.plan(&front.tokens, active) {
                Plan::Admit { slot, start } => (slot, start),
                Plan::Wait | Plan::Full => return Flow::Continue,
            };
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            let index = queued.index;
            if on_event(GenerationEvent::Started(index)) == Flow::Stop {
                // Every started request gets a Finished event, even one cancelled
                // before its first token.
                let _ = on_event(GenerationEvent::Finished(index, Ok(cancelled())));
                return Flow::Stop;
            }
            let (sampler, grammar) = match self.engine.sampler(&queued.request) {
                Ok(samplers) => samplers,
                Err(err) => {
                    if on_event(GenerationEvent::Finished(index, Err(err))) == Flow::Stop {
                        return Flow::Stop;
                    }
                    continue;
                }
            };
            let (reused, copy_pending) = match start {
                Start::Own(keep) => (self.pool.truncate(slot, keep), false),
                Start::Copy { from, keep } => match self.pool.share(from, slot, keep) {
                    Ok(kept) => (kept, true),
                    Err(err) => {
                        self.pool.clear(slot);
                        if on_event(GenerationEvent::Finished(index, Err(err))) == Flow::Stop {
                            return Flow::Stop;
                        }
                        continue;
                    }
                },
            };
            let logprobs = queued.request.params.logprobs.then(Vec::new);
            active[slot] = Some(Box::new(Sequence {
                slot,
                queued,
                logprobs,
                sampler,
                grammar,
                prompt_next: reused,
                next_token: None,
                logits_at: None,
                output: String::new(),
                pending: Vec::new(),
                completion_tokens: 0,
                reused_prompt_tokens: reused,
                copy_pending,
                started: Instant::now(),
                prompt_done: None,
                first_token: None,
                failed: None,
            }));
        }
        Flow::Continue
    }

    /// Chooses a free slot for a prompt, and where its start comes from.
    fn plan(&self, tokens: &[LlamaToken], active: &Active) -> Plan {
        // The prompt's last token is always decoded: sampling needs its logits.
        let limit = tokens.len().saturating_sub(1);
        let reusable = |slot: usize| {
            if self.pool.whole(slot) {
                common_start(&self.pool.held[slot], tokens).min(limit)
            } else {
                0
            }
        };
        // The free slot that already holds the most of this prompt; the lowest on a tie,
        // so that busy slots stay together (llama.cpp splits a batch at gaps in them).
        let Some((slot, own)) = (0..active.len())
            .filter(|&slot| active[slot].is_none())
            .map(|slot| (slot, reusable(slot)))
            .max_by_key(|&(slot, shared)| (shared, std::cmp::Reverse(slot)))
        else {
            return Plan::Full;
        };
        let mut copy: Option<(usize, usize)> = None;
        let mut coming = 0;
        for sequence in active.iter().flatten() {
            let shared = reusable(sequence.slot);
            if copy.is_none_or(|(_, best)| shared > best) {
                copy = Some((sequence.slot, shared));
            }
            if sequence.prompt_next < sequence.queued.tokens.len() {
                coming = coming.max(common_start(&sequence.queued.tokens, tokens).min(limit));
            }
        }
        let best_now = own.max(copy.map_or(0, |(_, shared)| shared));
        if coming >= best_now + MIN_COPIED_PREFIX {
            return Plan::Wait;
        }
        match copy {
            Some((from, keep)) if keep >= own + MIN_COPIED_PREFIX => Plan::Admit {
                slot,
                start: Start::Copy { from, keep },
            },
            _ => Plan::Admit {
                slot,
                start: Start::Own(own),
            },
        }
    }

    /// One step: the prompts waiting to be read, then the next token of every generating
    /// sequence. A sequence whose prompt ends in the first part samples its first token
    /// there and joins the second, so the token batch has no gaps: llama.cpp splits a
    /// batch into one computation per run of consecutive sequences, and a sequence
    /// sitting out would split it in two.
    fn step(
        &mut self,
        batch: &mut LlamaBatch<'_>,
        active: &mut Active,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> Flow {
        // Each prompt is read in a decode of its own. A batch holding several sequences'
        // prompts (several tokens in each of several KV streams) is computed with other
        // arithmetic than one sequence's prompt alone: measured on Qwen2.5-Coder-0.5B (then
        // with repacked weights), a greedy JSON reply changed with the prompt it was read
        // beside; not measured again since repacking was compiled out. One token in each
        // stream, as in the token part, computes what a lone sequence computes. The cost
        // is small: reading a prompt is compute-bound, so one pass over the weights per
        // prompt instead of per step adds little.
        let reading: Vec<usize> = active
            .iter()
            .flatten()
            .filter(|s| s.prompt_next < s.queued.tokens.len())
            .map(|s| s.slot)
            .collect();
        for slot in reading {
            if self.decode(batch, active, Part::Prompt(slot), on_event) == Flow::Stop {
                return Flow::Stop;
            }
        }
        if active.iter().flatten().any(|s| s.next_token.is_some()) {
            return self.decode(batch, active, Part::Tokens, on_event);
        }
        Flow::Continue
    }

    /// Decodes one part of a step and samples every sequence that has logits in it.
    fn decode(
        &mut self,
        batch: &mut LlamaBatch<'_>,
        active: &mut Active,
        part: Part,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> Flow {
        batch.clear();
        let mut add_failed = None;
        for sequence in active.iter_mut().flatten() {
            sequence.logits_at = None;
            let held = &mut self.pool.held[sequence.slot];
            match part {
                Part::Tokens => {
                    let Some(token) = sequence.next_token.take() else {
                        continue;
                    };
                    if let Err(e) =
                        batch.add(token, held.len() as i32, &[sequence.slot as i32], true)
                    {
                        add_failed = Some(e.to_string());
                    }
                    held.push(token);
                    sequence.logits_at = Some(batch.n_tokens() - 1);
                }
                Part::Prompt(slot) => {
                    let tokens = &sequence.queued.tokens;
                    if sequence.slot != slot || sequence.prompt_next >= tokens.len() {
                        continue;
                    }
                    let take = (tokens.len() - sequence.prompt_next).min(BATCH_SIZE as usize);
                    for &token in &tokens[sequence.prompt_next..sequence.prompt_next + take] {
                        sequence.prompt_next += 1;
                        let last = sequence.prompt_next == tokens.len();
                        if let Err(e) =
                            batch.add(token, held.len() as i32, &[sequence.slot as i32], last)
                        {
                            add_failed = Some(e.to_string());
                        }
                        held.push(token);
                        if last {
                            sequence.logits_at = Some(batch.n_tokens() - 1);
                        }
                    }
                }
            }
        }
        let started = Instant::now();
        let decoded = match add_failed {
            Some(message) => Err(message),
            None => self.pool.ctx.decode(batch).map_err(|e| e.to_string()),
        };
        tracing::debug!(
            target: "promptlab::batch",
            part = ?part,
            tokens = batch.n_tokens(),
            sequences = active.iter().flatten().count(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "decoded"
        );
        if let Err(message) = decoded {
            // The step is lost for every sequence in it.
            let mut flow = Flow::Continue;
            for entry in active.iter_mut() {
                if let Some(sequence) = entry.take() {
                    self.pool.clear(sequence.slot);
                    let err =
                        EngineError::Generation(format!("llama.cpp decode failed: {message}"));
                    if on_event(GenerationEvent::Finished(sequence.queued.index, Err(err)))
                        == Flow::Stop
                    {
                        flow = Flow::Stop;
                    }
                }
            }
            return flow;
        }

        let now = Instant::now();
        let mut flow = Flow::Continue;
        for entry in active.iter_mut() {
            let Some(sequence) = entry.as_mut() else {
                continue;
            };
            sequence.copy_pending = false;
            let finish = match sequence.logits_at.take() {
                Some(index) => {
                    sequence.prompt_done.get_or_insert(now);
                    let (finish, said) = self.sample(sequence, index, on_event);
                    if said == Flow::Stop {
                        flow = Flow::Stop;
                    }
                    finish
                }
                None => None,
            };
            let finish = finish.or_else(|| {
                (part == Part::Tokens && self.abandoned(sequence.queued.index))
                    .then_some(FinishReason::Cancelled)
            });
            if let Some(finish) = finish
                && let Some(sequence) = entry.take()
                && self.finish(*sequence, finish, on_event) == Flow::Stop
            {
                flow = Flow::Stop;
            }
        }
        flow
    }

    /// Samples the sequence's next token and applies the stopping rules.
    fn sample(
        &mut self,
        sequence: &mut Sequence,
        index: i32,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> (Option<FinishReason>, Flow) {
        let vocab = self.engine.model().vocab();
        let Some(token) = pick_token(&self.pool.ctx, sequence, index) else {
            let so_far: String = sequence.output.chars().take(200).collect();
            sequence.failed = Some(EngineError::Schema(format!(
                "the output's grammar allows no next token after {so_far:?}: the JSON schema or grammar cannot be satisfied (for example a minimum above its maximum)"
            )));
            return (Some(FinishReason::EndOfText), Flow::Continue);
        };
        let request = &sequence.queued.request;
        sequence.first_token.get_or_insert_with(Instant::now);
        if vocab.is_eog(token) && !request.params.ignore_eos {
            return (Some(FinishReason::EndOfText), Flow::Continue);
        }
        sequence.completion_tokens += 1;
        if let Some(logprobs) = sequence.logprobs.as_mut() {
            logprobs.push(token_logprob(self.pool.ctx.get_logits_ith(index), token));
        }
        // A raw grammar matches special tokens (`<tool_call>`) by their text, so the
        // text returned must show them too, or the caller could not tell what matched.
        let special = request.grammar.is_some();
        sequence
            .pending
            .extend(vocab.token_to_piece(token, special, None));
        let piece = take_utf8(&mut sequence.pending);
        let longest_stop = request
            .params
            .stop
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        let searched_from = floor_char(
            &sequence.output,
            sequence.output.len().saturating_sub(longest_stop),
        );
        sequence.output.push_str(&piece);
        if let Some(cut) = cut_at_stop(&sequence.output[searched_from..], &request.params.stop) {
            sequence.output.truncate(searched_from + cut);
            sequence.pending.clear();
            return (Some(FinishReason::StopSequence), Flow::Continue);
        }
        let flow = if piece.is_empty() {
            Flow::Continue
        } else {
            on_event(GenerationEvent::Token(sequence.queued.index, piece))
        };
        if flow == Flow::Stop {
            return (Some(FinishReason::Cancelled), flow);
        }
        let window = self.context_size.min(self.pool.cells_per_slot as usize);
        if sequence.completion_tokens >= request.params.max_tokens
            || self.pool.held[sequence.slot].len() + 1 >= window
        {
            return (Some(FinishReason::Length), flow);
        }
        sequence.next_token = Some(token);
        (None, flow)
    }

    /// Reports a finished sequence. Its slot keeps what it holds (the prompt as far as
    /// it was read and the generated tokens decoded) for a later prompt that starts alike.
    fn finish(
        &mut self,
        mut sequence: Sequence,
        finish: FinishReason,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) -> Flow {
        if sequence.copy_pending {
            self.pool.clear(sequence.slot);
        }
        if finish != FinishReason::StopSequence {
            let rest = String::from_utf8_lossy(&sequence.pending).into_owned();
            sequence.output.push_str(&rest);
        }
        if let Some(err) = sequence.failed.take() {
            return on_event(GenerationEvent::Finished(sequence.queued.index, Err(err)));
        }
        let end = Instant::now();
        let prompt_done = sequence.prompt_done.unwrap_or(end);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let prompt_secs = (prompt_done - sequence.started).as_secs_f64();
        let gen_secs = (end - prompt_done).as_secs_f64();
        let prompt_tokens = sequence.queued.tokens.len();
        let decoded_prompt_tokens = sequence
            .prompt_next
            .saturating_sub(sequence.reused_prompt_tokens);
        let generation = Generation {
            text: sequence.output,
            finish,
            prompt_tokens: prompt_tokens as u32,
            completion_tokens: sequence.completion_tokens,
            ttft_ms: ms(sequence.first_token.unwrap_or(end) - sequence.started),
            total_ms: ms(end - sequence.started),
            prompt_tokens_per_s: (prompt_secs > 0.0 && decoded_prompt_tokens > 0)
                .then(|| decoded_prompt_tokens as f64 / prompt_secs),
            tokens_per_s: (gen_secs > 0.0 && sequence.completion_tokens > 0)
                .then(|| sequence.completion_tokens as f64 / gen_secs),
            cached_prompt_tokens: sequence.reused_prompt_tokens as u32,
            logprobs: sequence.logprobs,
        };
        on_event(GenerationEvent::Finished(
            sequence.queued.index,
            Ok(generation),
        ))
    }

    /// Every sequence in flight finishes as cancelled; queued requests are not reported.
    fn cancel_all(
        &mut self,
        active: &mut Active,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        for entry in active.iter_mut() {
            if let Some(sequence) = entry.take() {
                let _ = self.finish(*sequence, FinishReason::Cancelled, on_event);
            }
        }
    }
}

fn cancelled() -> Generation {
    Generation::cancelled(String::new())
}
