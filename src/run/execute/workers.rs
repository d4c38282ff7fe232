//! Several engine instances of one small local model, each on its share of the cores and
//! of the cells (see [`crate::engine::llama::instances`] for when and why). Outputs do not
//! change: llama.cpp's kernels here give a sequence the same arithmetic at any batch
//! make-up and any thread count (docs/src/batch-invariance.md).

use std::sync::mpsc;

use crate::catalog::ModelRef;
use crate::engine::{CancelToken, EngineError, EngineWorker, OpenOptions, WorkerEvent};

use super::ExecuteOptions;

/// How many instances of `model` to run for `cells` cells: `options.workers` when set (for
/// a GGUF model run by llama.cpp; other engines have their own concurrency, a remote
/// model's being its servers'), else [`crate::engine::llama::instances`] when cells are
/// decoded together and each instance gets at least two batches of them.
pub(super) fn count(model: &ModelRef, options: &ExecuteOptions, cells: usize) -> usize {
    let Some(entry) = model.entry.as_ref().filter(|e| e.runs_on_llama_cpp()) else {
        return 1;
    };
    if let Some(workers) = options.workers {
        return (workers.max(1) as usize).min(cells.max(1));
    }
    let parallel = options
        .parallel
        .unwrap_or(crate::engine::llama::DEFAULT_PARALLEL) as usize;
    if parallel <= 1 {
        // `--parallel 1` means one cell at a time.
        return 1;
    }
    let threads = options.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        |t| t as usize,
    );
    // Another instance costs a load (half a second for Gemma 3 270M, a third of its
    // 12-cell capitals run): worth it only with two batches of cells for each.
    crate::engine::llama::instances(entry, threads, cells / (2 * parallel))
}

/// Starts `workers` instances of `model`, the threads shared out between them.
pub(super) fn spawn(
    model: &ModelRef,
    options: &ExecuteOptions,
    workers: usize,
) -> Result<Vec<EngineWorker>, EngineError> {
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u32
    });
    (0..workers)
        .map(|index| {
            // Threads left over after an even share go to the first instances.
            let share =
                threads / workers as u32 + u32::from((index as u32) < threads % workers as u32);
            crate::engine::open(
                model,
                &OpenOptions::batch(Some(share.max(1)), options.parallel),
            )
        })
        .collect()
}

/// Generates `requests` on `workers`, each taking a contiguous share (cells of one prompt
/// stay together, so its shared prefix is read once per instance). Events arrive as
/// (index into `requests`, event), ending with one `BatchDone` when every worker is done.
pub(super) fn generate(
    workers: &[EngineWorker],
    requests: Vec<crate::engine::GenerationRequest>,
    cancel: &CancelToken,
) -> mpsc::Receiver<(usize, WorkerEvent)> {
    let (merged, events) = mpsc::channel();
    let total = requests.len();
    let share = total.div_ceil(workers.len().max(1));
    let mut requests = requests.into_iter();
    let mut offset = 0;
    let mut running = 0;
    for worker in workers {
        let chunk: Vec<_> = requests.by_ref().take(share).collect();
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        let from_worker = worker.generate(chunk, cancel.clone());
        let merged = merged.clone();
        let first = offset;
        running += 1;
        std::thread::spawn(move || {
            for event in from_worker {
                let done = event == WorkerEvent::BatchDone;
                let index = match &event {
                    WorkerEvent::Generation(generation) => first + generation.index(),
                    WorkerEvent::BatchDone => first,
                };
                if done || merged.send((index, event)).is_err() {
                    break;
                }
            }
            let _ = merged.send((first, WorkerEvent::BatchDone));
        });
        offset += len;
    }
    // Count the workers' ends, and pass on one.
    let (out, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut finished = 0;
        for (index, event) in events {
            if event == WorkerEvent::BatchDone {
                finished += 1;
                if finished == running {
                    let _ = out.send((index, WorkerEvent::BatchDone));
                    break;
                }
                continue;
            }
            if out.send((index, event)).is_err() {
                break;
            }
        }
        if running == 0 {
            let _ = out.send((0, WorkerEvent::BatchDone));
        }
    });
    drop(merged);
    receiver
}
