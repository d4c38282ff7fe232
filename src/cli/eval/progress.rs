//! The progress bar of an eval run on stderr. It ticks steadily (so a slow first batch does
//! not look like a hang) and its ETA comes from the cells the models generated, measured
//! only while a model was loaded: cached and resumed cells finish at once and would make
//! the first estimate absurdly short, a model load would make the next one absurdly long.
//! No estimate is shown until a few cells have been generated.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use promptlab::run::{CellResult, RunObserver};

/// Generated cells needed before an ETA is shown.
const MIN_CELLS: u64 = 3;

/// How often the bar redraws (spinner, elapsed time, ETA countdown) without new events.
const TICK: Duration = Duration::from_millis(250);

/// The generation speed of a run so far and the estimate it gives.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Time spent with a model loaded, in stretches that have ended.
    generating: Duration,
    /// When the current stretch began (a model finished loading).
    since: Option<Instant>,
    /// Cells generated (not cached, not resumed) while a model was loaded.
    generated: u64,
    /// Seconds per generated cell, as of the last one.
    seconds_per_cell: Option<f64>,
    /// When the run should end, as estimated at the last generated cell.
    finish_at: Option<Instant>,
    /// The time that was left when a model load paused the countdown.
    paused_left: Option<Duration>,
}

impl Pace {
    pub(super) fn model_loading(&mut self, now: Instant) {
        if let Some(since) = self.since.take() {
            self.generating += now.saturating_duration_since(since);
        }
        if let Some(finish) = self.finish_at.take() {
            self.paused_left = Some(finish.saturating_duration_since(now));
        }
    }

    pub(super) fn model_loaded(&mut self, now: Instant) {
        self.since = Some(now);
        if let Some(left) = self.paused_left.take() {
            self.finish_at = Some(now + left);
        }
    }

    /// A cell finished; `remaining` cells are still to come.
    pub(super) fn cell_finished(&mut self, cached: bool, remaining: u64, now: Instant) {
        let Some(since) = self.since else {
            // Before any model loaded: read back from the store or the cache.
            return;
        };
        if cached {
            return;
        }
        self.generated += 1;
        let elapsed = self.generating + now.saturating_duration_since(since);
        if self.generated >= MIN_CELLS {
            let per_cell = elapsed.as_secs_f64() / self.generated as f64;
            self.seconds_per_cell = Some(per_cell);
            self.finish_at = Some(now + Duration::from_secs_f64(per_cell * remaining as f64));
        }
    }

    /// The speed and the time left, as shown at `now`.
    pub(super) fn text(&self, now: Instant) -> String {
        let Some(per_cell) = self.seconds_per_cell else {
            return format!("ETA: measuring ({}/{MIN_CELLS} cells)", self.generated);
        };
        let rate = 1.0 / per_cell.max(1e-9);
        let speed = if rate >= 1.0 {
            format!("{rate:.1} cells/s")
        } else {
            format!("{rate:.2} cells/s")
        };
        let left = match (self.finish_at, self.paused_left) {
            (Some(finish), _) => finish.saturating_duration_since(now),
            (None, Some(left)) => left,
            (None, None) => Duration::ZERO,
        };
        if left.is_zero() {
            format!("{speed} · ETA any moment")
        } else {
            format!("{speed} · ETA {}", duration_text(left))
        }
    }
}

/// "42s", "7m 05s", "1h 02m".
fn duration_text(duration: Duration) -> String {
    let seconds = duration.as_secs() + u64::from(duration.subsec_millis() >= 500);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A line per answered agent question, above the bar: agent questions take seconds to
/// minutes each, so each is worth a line of its own.
pub(crate) struct QuestionLines {
    /// `(column, case)` by cell index.
    labels: Vec<(String, String)>,
    /// Steps of the questions being asked.
    steps: HashMap<usize, usize>,
    /// Cells that started here; a cell that finishes without starting was read back from
    /// the run being resumed.
    started: HashSet<usize>,
}

impl QuestionLines {
    pub(super) fn new(labels: Vec<(String, String)>) -> QuestionLines {
        QuestionLines {
            labels,
            steps: HashMap::new(),
            started: HashSet::new(),
        }
    }

    /// `agent @ qwen · 2/3 ✓ bus-count (2 steps, 4.1 s)`, or `(… recorded earlier)`
    /// for a question read back from the run being resumed.
    fn line(&mut self, cell: usize, result: &CellResult) -> String {
        let (column, case) = self.labels.get(cell).cloned().unwrap_or_default();
        let steps = self.steps.remove(&cell).unwrap_or(0);
        let how = if self.started.remove(&cell) {
            format!(
                "{steps} step{}, {:.1} s",
                if steps == 1 { "" } else { "s" },
                result.latency_ms / 1000.0
            )
        } else {
            format!("{:.1} s, recorded earlier", result.latency_ms / 1000.0)
        };
        format!(
            "{column} · {}/{} {} {case} ({how})",
            cell + 1,
            self.labels.len(),
            if result.passed { "✓" } else { "✗" },
        )
    }
}

pub(crate) struct Progress {
    pub(crate) bar: ProgressBar,
    pace: Arc<Mutex<Pace>>,
    questions: Option<QuestionLines>,
}

impl Progress {
    pub(crate) fn new(cells: u64, quiet: bool, questions: Option<QuestionLines>) -> Progress {
        let pace = Arc::new(Mutex::new(Pace::default()));
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(cells), ProgressDrawTarget::stderr())
        };
        let shown = Arc::clone(&pace);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:24}] {pos}/{len} cells · {pace} · {msg}",
        ) {
            bar.set_style(
                style
                    .with_key(
                        "pace",
                        move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                            let pace = shown.lock().unwrap_or_else(PoisonError::into_inner);
                            let _ = out.write_str(&pace.text(Instant::now()));
                        },
                    )
                    .progress_chars("=> "),
            );
        }
        if !quiet {
            bar.enable_steady_tick(TICK);
        }
        Progress {
            bar,
            pace,
            questions,
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a user should hear about where `model` runs: nothing on the CPU it was meant
/// for; the device when a GPU holds layers; why not when it asked for a GPU it did not get.
pub(crate) fn placement_line(
    model: &str,
    capabilities: &promptlab::engine::Capabilities,
) -> Option<String> {
    if let Some(note) = &capabilities.offload_note {
        return Some(format!("warning: `{model}` {note}"));
    }
    let runs_on = capabilities.runs_on.as_deref()?;
    (!runs_on.starts_with("CPU")).then(|| {
        format!(
            "note: `{model}` runs on {runs_on}; outputs at any --parallel are verified identical to --parallel 1 on the CPU only (benches/gpu.sh checks this GPU)"
        )
    })
}

impl RunObserver for Progress {
    fn model_loading(&mut self, model: &str) {
        self.pace().model_loading(Instant::now());
        self.bar.set_message(format!("loading {model}"));
    }
    fn model_loaded(&mut self, model: &str, load_ms: f64) {
        self.pace().model_loaded(Instant::now());
        self.bar
            .set_message(format!("{model} (loaded in {load_ms:.0} ms)"));
    }
    fn model_placed(&mut self, model: &str, capabilities: &promptlab::engine::Capabilities) {
        // Printed even when the bar is hidden: where a model ran changes its speed and
        // can change its outputs.
        if let Some(line) = placement_line(model, capabilities) {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }
    fn cell_started(&mut self, cell: usize) {
        if let Some(questions) = self.questions.as_mut() {
            questions.started.insert(cell);
        }
    }
    fn agent_step(&mut self, cell: usize, _step: &promptlab::trace::AgentStep) {
        if let Some(questions) = self.questions.as_mut() {
            *questions.steps.entry(cell).or_default() += 1;
        }
    }
    fn cell_finished(&mut self, cell: usize, result: &CellResult) {
        if let Some(questions) = self.questions.as_mut() {
            let line = questions.line(cell, result);
            // Printed even when the bar is hidden (stderr not a terminal).
            self.bar.suspend(|| eprintln!("{line}"));
        }
        self.bar.inc(1);
        let remaining = self
            .bar
            .length()
            .unwrap_or(0)
            .saturating_sub(self.bar.position());
        self.pace()
            .cell_finished(result.cached, remaining, Instant::now());
    }
    fn judging(&mut self, assertions: usize) {
        // Judging runs at its own pace: measure it afresh.
        *self.pace() = Pace::default();
        self.pace().model_loaded(Instant::now());
        self.bar.set_position(0);
        self.bar.set_length(assertions as u64);
        self.bar.set_message("judging");
    }
    fn judged(&mut self, count: usize) {
        self.bar.inc(count as u64);
        let remaining = self
            .bar
            .length()
            .unwrap_or(0)
            .saturating_sub(self.bar.position());
        let now = Instant::now();
        let mut pace = self.pace();
        for _ in 0..count {
            pace.cell_finished(false, remaining, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    /// Issue 21: 30 cached cells finished at once, then the first generated batch took
    /// 30 s. The bar said "ETA 0s" for those 30 s, then "ETA 7m". Now cached cells do not
    /// count, no estimate is made from fewer than three generated cells, and the estimate
    /// counts down between batches instead of jumping.
    #[test]
    fn eta_ignores_cached_cells_and_waits_for_generated_ones() {
        let start = Instant::now();
        let mut pace = Pace::default();
        let total = 62u64;
        let mut done = 0u64;
        for _ in 0..30 {
            done += 1;
            pace.cell_finished(true, total - done, start);
        }
        assert_eq!(pace.text(start), "ETA: measuring (0/3 cells)");
        pace.model_loading(start);
        // A 5 s model load is not generation time.
        pace.model_loaded(at(start, 5.0));
        for _ in 0..2 {
            done += 1;
            pace.cell_finished(false, total - done, at(start, 15.0));
        }
        assert_eq!(pace.text(at(start, 20.0)), "ETA: measuring (2/3 cells)");
        // A batch of 8 at 35 s: 10 cells in 30 s of generation, 3 s a cell, 22 left.
        for _ in 0..8 {
            done += 1;
            pace.cell_finished(false, total - done, at(start, 35.0));
        }
        assert_eq!(pace.text(at(start, 35.0)), "0.33 cells/s · ETA 1m 06s");
        // Between batches it counts down.
        assert_eq!(pace.text(at(start, 50.0)), "0.33 cells/s · ETA 51s");
        assert_eq!(pace.text(at(start, 200.0)), "0.33 cells/s · ETA any moment");
    }

    #[test]
    fn a_second_model_load_pauses_the_countdown() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.model_loading(start);
        pace.model_loaded(start);
        for i in 1..=4u64 {
            pace.cell_finished(false, 8 - i, at(start, i as f64 * 0.5));
        }
        assert_eq!(pace.text(at(start, 2.0)), "2.0 cells/s · ETA 2s");
        pace.model_loading(at(start, 2.0));
        assert_eq!(pace.text(at(start, 60.0)), "2.0 cells/s · ETA 2s");
        pace.model_loaded(at(start, 60.0));
        assert_eq!(pace.text(at(start, 61.0)), "2.0 cells/s · ETA 1s");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_text(Duration::from_secs(42)), "42s");
        assert_eq!(duration_text(Duration::from_secs(425)), "7m 05s");
        assert_eq!(duration_text(Duration::from_secs(3720)), "1h 02m");
    }
}
