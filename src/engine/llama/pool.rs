//! A llama.cpp context seen as a pool of slots, one KV stream per slot.
//!
//! Batch invariance starts here: with one stream per sequence, a sequence's cells sit at
//! the same places whatever else is decoding (position `i` in cell `i`), so attention sums
//! over them in the same order as in a lone run. A unified cache interleaves sequences and
//! changes the grouping of those sums, which flips near-tied greedy choices.
//!
//! The pool also remembers which tokens each slot's stream holds, so a later prompt that
//! starts the same way (the next step of a conversation, another case of the same
//! few-shot prompt) decodes only the rest.

use std::num::NonZeroU32;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::{BATCH_SIZE, backend};
use crate::engine::EngineError;

/// llama.cpp rounds each stream up to a multiple of this many cells.
const STREAM_PADDING: u32 = 256;

pub(super) struct Pool<'m> {
    pub ctx: LlamaContext<'m>,
    /// Cells in each slot's stream: the most a sequence can hold.
    pub cells_per_slot: u32,
    /// What each slot's stream holds, position by position.
    pub held: Vec<Vec<LlamaToken>>,
}

impl<'m> Pool<'m> {
    pub fn new(
        model: &'m LlamaModel,
        slots: u32,
        cells_per_slot: u32,
        threads: i32,
    ) -> Result<Pool<'m>, EngineError> {
        let slots = slots.max(1);
        let cells_per_slot = cells_per_slot
            .max(1)
            .div_ceil(STREAM_PADDING)
            .saturating_mul(STREAM_PADDING);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cells_per_slot.saturating_mul(slots)))
            .with_n_seq_max(slots)
            .with_kv_unified(false)
            .with_n_batch(BATCH_SIZE)
            .with_n_ubatch(BATCH_SIZE)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_no_perf(false)
            // llama.cpp's AUTO policy turns flash attention on for CPU; for single-token
            // decoding on these small models it measured ~5% slower (and llama.cpp's own
            // tools default to off on CPU), so it stays off.
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        let ctx = model.new_context(backend()?, params).map_err(|e| {
            EngineError::Generation(format!("cannot create a llama.cpp context: {e}"))
        })?;
        Ok(Pool {
            ctx,
            cells_per_slot,
            held: vec![Vec::new(); slots as usize],
        })
    }

    pub fn slots(&self) -> usize {
        self.held.len()
    }

    /// Whether this pool can serve `slots` sequences of up to `cells` tokens each.
    pub fn fits(&self, slots: usize, cells: u32) -> bool {
        self.slots() >= slots && self.cells_per_slot >= cells
    }

    /// Whether the slot's stream still holds every position from 0: a sliding-window
    /// model drops old positions, and a prefix with holes cannot be reused.
    pub fn whole(&self, slot: usize) -> bool {
        self.ctx.kv_cache_seq_pos_min(slot as i32) <= 0
    }

    /// Keeps the first `keep` positions of the slot's stream and drops the rest. Returns
    /// how many were kept: 0 when llama.cpp cannot cut the sequence there.
    pub fn truncate(&mut self, slot: usize, keep: usize) -> usize {
        let keep = keep.min(self.held[slot].len());
        let cut = keep > 0
            && self.whole(slot)
            && self
                .ctx
                .clear_kv_cache_seq(Some(slot as u32), Some(keep as u32), None)
                .unwrap_or(false);
        if cut {
            self.held[slot].truncate(keep);
            keep
        } else {
            self.clear(slot);
            0
        }
    }

    /// Empties the slot's stream.
    pub fn clear(&mut self, slot: usize) {
        let _ = self.ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
        self.held[slot].clear();
    }

    /// Makes `to` hold the first `keep` positions of `from`'s stream. llama.cpp copies
    /// whole streams, at the start of the next decode; the copy is cut at `keep` here.
    pub fn share(&mut self, from: usize, to: usize, keep: usize) -> Result<usize, EngineError> {
        self.ctx
            .kv_cache_seq_cp(from as i32, to as i32, None, None)
            .map_err(|e| EngineError::Generation(format!("cannot share a prompt prefix: {e}")))?;
        self.held[to] = self.held[from][..keep.min(self.held[from].len())].to_vec();
        // The copy is whole, so what `from` held beyond `keep` goes.
        let kept = self.held[to].len();
        if kept == 0
            || !self
                .ctx
                .clear_kv_cache_seq(Some(to as u32), Some(kept as u32), None)
                .unwrap_or(false)
        {
            self.clear(to);
            return Ok(0);
        }
        Ok(kept)
    }
}

/// How many tokens two sequences have in common at their start.
pub(super) fn common_start(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
