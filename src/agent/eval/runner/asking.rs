//! Asking a column's questions. On a local GGUF model they are asked together: each
//! question runs on a thread of its own with its share of a batched engine (one per core
//! for a small model), so their replies decode in the same steps (each question keeps its
//! own slot's cache between its steps). The engine's batch invariance makes every trace the same as when the questions
//! are asked one after another, which is what happens on other models.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc};

use super::{AgentEvalEvent, AgentEvalPlan, AgentRunError, Place};
use crate::agent::AgentEvent;
use crate::agent::session::{
    LoadedModel, Question, Session, SessionError, TraceRecorder, ask_with,
};
use crate::engine::batcher::{Batcher, SharedModel};
use crate::engine::chat_template::ChatTemplate;
use crate::engine::{CancelToken, Flow, OpenOptions};
use crate::params::GenerationParams;
use crate::trace::{AgentStep, AgentStop, AgentTrace};

/// A model loaded for a column's questions.
pub(in crate::agent::eval) enum Loaded {
    /// One conversation at a time (remote models, or one slot).
    Own(LoadedModel),
    /// Batched engines that questions on several threads share: a small model runs as one
    /// instance per core (see [`crate::engine::llama::instances`]), each thread asking
    /// through one of them.
    Shared {
        batchers: Vec<Arc<Batcher>>,
        template: Option<ChatTemplate>,
        params: GenerationParams,
        slots: usize,
    },
}

impl Loaded {
    /// Loads `model` for up to `slots` questions at once: a local GGUF model gets a
    /// batched engine with that many sequences, others are asked one at a time.
    pub fn load(session: &Session, model: &str, slots: usize) -> Result<Loaded, SessionError> {
        let resolved = session.project.catalog.resolve(model)?;
        let shared = resolved
            .entry
            .as_ref()
            .filter(|e| e.kind().is_gguf() && slots > 1);
        let Some(entry) = shared else {
            return Ok(Loaded::Own(session.load_model(model)?));
        };
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let instances = crate::engine::llama::instances(entry, threads, slots.div_ceil(2));
        let mut batchers = Vec::new();
        let mut template = None;
        for index in 0..instances {
            // Slots and threads shared out, the first instances taking any remainder.
            let share = |total: usize| total / instances + usize::from(index < total % instances);
            let worker = crate::engine::open(
                &resolved,
                &OpenOptions {
                    threads: Some(share(threads).max(1) as u32),
                    parallel: Some(share(slots).max(1) as u32),
                    keep_conversation: true,
                    gpu_layers: session.gpu_layers,
                },
            )?;
            template = worker.chat_template().cloned();
            batchers.push(Arc::new(Batcher::start(worker)));
        }
        Ok(Loaded::Shared {
            batchers,
            template,
            params: entry.params().clone(),
            slots,
        })
    }
}

/// What asking reports: an event for the progress display, or a question done.
pub(super) enum Answered<'a> {
    Event(AgentEvalEvent<'a>),
    Trace {
        row: usize,
        trace: AgentTrace,
        agent_run: Option<i64>,
    },
}

/// What a question's thread reports.
enum Progress {
    Asking(usize),
    Token(usize, String),
    Step(usize, AgentStep),
    Done(usize, Result<AgentTrace, SessionError>),
}

/// Asks the questions of `rows` in one column, reporting to `on_answer` on this thread
/// (which alone touches the run store). Returns false when cancelled before all were
/// answered: the questions in flight then are not reported, so a resume asks them again.
pub(super) fn ask(
    plan: &AgentEvalPlan,
    place: &Place,
    loaded: &mut Loaded,
    rows: &[usize],
    cancel: &CancelToken,
    on_answer: &mut dyn FnMut(Answered) -> Result<Flow, AgentRunError>,
) -> Result<bool, AgentRunError> {
    let session = &place.column.session;
    let mut handler = Handler {
        plan,
        place,
        session,
        cancel,
        recorders: HashMap::new(),
        complete: true,
    };
    match loaded {
        Loaded::Own(model) => {
            for &row in rows {
                if cancel.is_cancelled() {
                    return Ok(false);
                }
                handler.handle(Progress::Asking(row), on_answer)?;
                let question = plan.question(place, row);
                let mut failed = None;
                let result = ask_with(
                    &mut model.engine,
                    &model.params,
                    &session.tools,
                    &session.context,
                    &question,
                    &mut |event| {
                        let report = match event {
                            AgentEvent::Token(text) => Progress::Token(row, text.to_string()),
                            AgentEvent::Step(step) => Progress::Step(row, step.clone()),
                        };
                        if let Err(err) = handler.handle(report, on_answer) {
                            failed = Some(err);
                            cancel.cancel();
                        }
                        if cancel.is_cancelled() {
                            Flow::Stop
                        } else {
                            Flow::Continue
                        }
                    },
                );
                if let Some(err) = failed {
                    return Err(err);
                }
                handler.handle(Progress::Done(row, result), on_answer)?;
            }
        }
        Loaded::Shared {
            batchers,
            template,
            params,
            slots,
        } => {
            // Prepared here: the plan holds the run store, which stays on this thread.
            let questions: VecDeque<(usize, Question)> = rows
                .iter()
                .map(|&row| (row, plan.question(place, row)))
                .collect();
            let queue = Mutex::new(questions);
            let (tx, rx) = mpsc::channel::<Progress>();
            let threads = (*slots).min(rows.len()).max(1);
            let (tools, context) = (&session.tools, &session.context);
            std::thread::scope(|scope| -> Result<(), AgentRunError> {
                for thread in 0..threads {
                    let tx = tx.clone();
                    // Threads spread over the instances as evenly as their slots are.
                    let batcher = batchers[thread % batchers.len()].clone();
                    let mut model = SharedModel::new(batcher, template.clone());
                    let queue = &queue;
                    let params = &*params;
                    scope.spawn(move || {
                        loop {
                            let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                            let Some((row, question)) = next else { break };
                            if cancel.is_cancelled() || tx.send(Progress::Asking(row)).is_err() {
                                break;
                            }
                            let result = ask_with(
                                &mut model,
                                params,
                                tools,
                                context,
                                &question,
                                &mut |event| {
                                    let report = match event {
                                        AgentEvent::Token(text) => {
                                            Progress::Token(row, text.to_string())
                                        }
                                        AgentEvent::Step(step) => Progress::Step(row, step.clone()),
                                    };
                                    if tx.send(report).is_err() || cancel.is_cancelled() {
                                        Flow::Stop
                                    } else {
                                        Flow::Continue
                                    }
                                },
                            );
                            let _ = tx.send(Progress::Done(row, result));
                        }
                    });
                }
                drop(tx);
                for progress in rx {
                    if let Err(err) = handler.handle(progress, on_answer) {
                        // The threads stop at their next token; the scope waits for them.
                        cancel.cancel();
                        return Err(err);
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(handler.complete && !cancel.is_cancelled())
}

/// Turns the questions' progress into run-store records and reports, on one thread.
struct Handler<'p, 'a> {
    plan: &'p AgentEvalPlan,
    place: &'p Place<'a>,
    session: &'p Session,
    cancel: &'p CancelToken,
    recorders: HashMap<usize, (Option<i64>, TraceRecorder<'p>)>,
    complete: bool,
}

impl Handler<'_, '_> {
    fn handle(
        &mut self,
        progress: Progress,
        on_answer: &mut dyn FnMut(Answered) -> Result<Flow, AgentRunError>,
    ) -> Result<(), AgentRunError> {
        let index = |row: usize| self.place.column_index * self.plan.cases.len() + row;
        let flow = match progress {
            Progress::Asking(row) => {
                let case = &self.plan.set.cases[self.plan.cases[row]];
                let agent_run = self
                    .session
                    .record_question(self.place.model, &case.question)?;
                let recorder = self.session.recorder(agent_run, &case.question);
                self.recorders.insert(row, (agent_run, recorder));
                on_answer(Answered::Event(AgentEvalEvent::Asking {
                    index: index(row),
                }))?
            }
            Progress::Token(row, text) => on_answer(Answered::Event(AgentEvalEvent::Token {
                index: index(row),
                text: &text,
            }))?,
            Progress::Step(row, step) => {
                if let Some((_, recorder)) = self.recorders.get_mut(&row) {
                    recorder.step(&step);
                }
                on_answer(Answered::Event(AgentEvalEvent::Step {
                    index: index(row),
                    step: &step,
                }))?
            }
            Progress::Done(row, result) => {
                let trace = result?;
                let (agent_run, recorder) = match self.recorders.remove(&row) {
                    Some(entry) => entry,
                    None => (None, self.session.recorder(None, &trace.question)),
                };
                recorder.finish(&trace)?;
                if trace.stop == AgentStop::Cancelled {
                    // Not recorded as a cell: a resume asks it again.
                    self.complete = false;
                    Flow::Continue
                } else {
                    on_answer(Answered::Trace {
                        row,
                        trace,
                        agent_run,
                    })?
                }
            }
        };
        if flow == Flow::Stop {
            self.cancel.cancel();
        }
        Ok(())
    }
}
