//! An agent evaluation as a results matrix: a column per prompt and model, a row per
//! question, the final answer as the cell's output and the trace checks as its
//! assertions. `promptlab eval` writes every report format from it and the run store
//! keeps it like any other run.

use crate::engine::FinishReason;
use crate::evalset::EvalSet;
use crate::evalset::agent::{AgentEvalSet, CheckOutcome};
use crate::prompt::RenderedPrompt;
use crate::run::{CaseInfo, CellResult, Column, RunResult, Timing, assemble};
use crate::score::assertion::AssertionOutcome;
use crate::trace::{AgentStop, AgentTrace};

/// Generated tokens per second after each reply's first token, over all replies (prompt
/// reading and tool calls left out, as for a generated cell); None for traces recorded
/// before replies kept their time to first token.
fn decode_speed(trace: &AgentTrace) -> Option<f64> {
    if trace.steps.is_empty() || trace.steps.iter().any(|s| s.ttft_ms <= 0.0) {
        return None;
    }
    let tokens: u32 = trace
        .steps
        .iter()
        .map(|s| s.generated_tokens.saturating_sub(1))
        .sum();
    let ms: f64 = trace
        .steps
        .iter()
        .map(|s| (s.generation_ms - s.ttft_ms).max(0.0))
        .sum();
    (tokens > 0 && ms > 0.0).then(|| f64::from(tokens) * 1000.0 / ms)
}

/// One question's trace as a cell: passed when every check passed and the agent did not
/// end on an engine error.
pub fn cell(
    (column, case): (usize, usize),
    opening: RenderedPrompt,
    trace: &AgentTrace,
    outcomes: &[CheckOutcome],
) -> CellResult {
    let assertions: Vec<AssertionOutcome> = outcomes
        .iter()
        .map(|o| AssertionOutcome {
            named_scores: Default::default(),
            metric: None,
            assertion: o.check.clone(),
            passed: o.passed,
            score: if o.passed { 1.0 } else { 0.0 },
            weight: 1.0,
            reason: o.reason.clone(),
            judge_error: None,
        })
        .collect();
    let passed_checks = assertions.iter().filter(|a| a.passed).count();
    let generated = trace.generated_tokens();
    CellResult {
        column,
        case,
        prompt: opening,
        output: trace.answer.clone().unwrap_or_default(),
        error: trace.error.clone(),
        passed: trace.error.is_none() && passed_checks == assertions.len(),
        score: if assertions.is_empty() {
            1.0
        } else {
            passed_checks as f64 / assertions.len() as f64
        },
        assertions,
        finish: match trace.stop {
            AgentStop::Answered => Some(FinishReason::EndOfText),
            AgentStop::MaxTokens => Some(FinishReason::Length),
            AgentStop::Cancelled => Some(FinishReason::Cancelled),
            AgentStop::MaxSteps | AgentStop::WallTime | AgentStop::EngineError => None,
        },
        prompt_tokens: trace.steps.iter().map(|s| s.prompt_tokens).sum(),
        completion_tokens: generated,
        // The first reply's: how long the question waited before the model answered.
        ttft_ms: trace.steps.first().map_or(0.0, |s| s.ttft_ms),
        latency_ms: trace.total_ms,
        tokens_per_s: decode_speed(trace),
        cached: false,
        logprobs: None,
    }
}

/// A column per prompt (or none: the built-in system prompt) and model.
pub fn column(prompt: Option<&str>, model: &str) -> Column {
    let prompt_id = prompt.unwrap_or("agent").to_string();
    Column {
        id: format!("{prompt_id} @ {model}"),
        prompt_id,
        model: model.to_string(),
    }
}

/// The matrix of an agent evaluation, with the summaries of ordinary runs.
pub fn run_result(
    set: &AgentEvalSet,
    timing: Timing,
    columns: Vec<Column>,
    cases: Vec<CaseInfo>,
    cells: Vec<CellResult>,
) -> RunResult {
    assemble(
        EvalSet::named(&set.name, &set.source),
        timing,
        columns,
        cases,
        cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{AgentStep, Convention, StepAction};

    fn trace(answer: Option<&str>, stop: AgentStop) -> AgentTrace {
        let step = |index, tokens| AgentStep {
            index,
            reply: String::new(),
            action: StepAction::Answer {
                text: String::new(),
            },
            prompt_tokens: 600,
            cached_prompt_tokens: 0,
            generated_tokens: tokens,
            generation_ms: 1000.0,
            ttft_ms: 200.0,
        };
        AgentTrace {
            question: "How many?".into(),
            convention: Convention::Hermes,
            tools: vec!["calculator".into()],
            steps: vec![step(0, 40), step(1, 8)],
            answer: answer.map(String::from),
            stop,
            error: None,
            total_ms: 2500.0,
        }
    }

    #[test]
    fn a_trace_becomes_a_cell_with_its_checks_as_assertions() {
        let outcome = |check: &str, passed| CheckOutcome {
            check: check.into(),
            passed,
            reason: (!passed).then(|| "expected a call to calculator".into()),
            counts_for: "selection".into(),
        };
        let opening = RenderedPrompt::Completion("q".into());
        let done = trace(Some("It is 3."), AgentStop::Answered);
        let cell = cell(
            (1, 2),
            opening.clone(),
            &done,
            &[outcome("tool-called", false), outcome("regex", true)],
        );
        assert_eq!((cell.column, cell.case), (1, 2));
        assert_eq!(cell.output, "It is 3.");
        assert!(!cell.passed);
        assert_eq!(cell.score, 0.5);
        assert_eq!(cell.prompt_tokens, 1200);
        assert_eq!(cell.completion_tokens, 48);
        assert_eq!(cell.latency_ms, 2500.0);
        assert_eq!(cell.ttft_ms, 200.0);
        // (39 + 7) tokens after the first ones in 2 × 800 ms of decoding.
        assert_eq!(cell.tokens_per_s, Some(28.75));
        assert_eq!(cell.finish, Some(FinishReason::EndOfText));
        assert_eq!(
            cell.failure_reasons(),
            vec!["tool-called: expected a call to calculator".to_string()]
        );

        let cut = trace(None, AgentStop::MaxTokens);
        let cell = super::cell((0, 0), opening.clone(), &cut, &[outcome("regex", true)]);
        assert!(cell.passed && cell.output.is_empty());
        assert_eq!(cell.finish, Some(FinishReason::Length));

        let mut failed = trace(None, AgentStop::EngineError);
        failed.error = Some("model file vanished".into());
        let cell = super::cell((0, 0), opening, &failed, &[outcome("regex", true)]);
        assert!(!cell.passed && cell.is_error());
    }
}
