//! Assertions scored on a scale rather than pass/fail: detector boxes (F1), the reference
//! text metrics (ROUGE, BLEU, chrF) and embedding similarity.

use super::*;
use crate::dialect::{Metrics, promptfoo_metrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMetric {
    /// ROUGE-N with this n (`rouge-n` is ROUGE-1, as in promptfoo).
    Rouge(usize),
    RougeL,
    Bleu,
    Chrf,
}

impl TextMetric {
    pub fn name(self) -> &'static str {
        match self {
            TextMetric::Rouge(2) => "rouge-2",
            TextMetric::Rouge(_) => "rouge-n",
            TextMetric::RougeL => "rouge-l",
            TextMetric::Bleu => "bleu",
            TextMetric::Chrf => "chrf",
        }
    }

    pub(super) fn default_threshold(self) -> f64 {
        match self {
            TextMetric::Rouge(_) | TextMetric::RougeL => 0.75,
            TextMetric::Bleu | TextMetric::Chrf => 0.5,
        }
    }

    /// The score, 0 to 1 (BLEU and chrF are divided by 100).
    pub fn score(self, output: &str, reference: &str) -> f64 {
        use crate::score::text_metrics as m;
        let value = match self {
            TextMetric::Rouge(n) => m::rouge_n(output, reference, n),
            TextMetric::RougeL => m::rouge_l(output, reference),
            TextMetric::Bleu => m::bleu(output, reference) / 100.0,
            TextMetric::Chrf => m::chrf(output, reference) / 100.0,
        };
        // BLEU of identical texts is 100.00000000000004 in floating point.
        value.clamp(0.0, 1.0)
    }
}

impl Assertion {
    /// Scored by F1, so a detector that finds 3 of 4 people scores 0.86 rather than 0.
    pub(super) fn check_boxes(
        &self,
        expected: &[crate::score::detection::LabelledRect],
        iou: f64,
        input: &CheckInput,
    ) -> AssertionOutcome {
        use crate::score::detection::{describe_match, match_boxes, parse_boxes};
        let minimum = self.threshold.unwrap_or(1.0);
        let (passed, score, reason) = match serde_json::from_str::<Value>(input.output)
            .map_err(|e| e.to_string())
            .and_then(|v| parse_boxes(&v).map_err(|e| e.to_string()))
        {
            Err(why) => (
                false,
                0.0,
                format!(
                    "output is not a list of boxes ({why}): {}",
                    excerpt(input.output)
                ),
            ),
            Ok(found) => {
                let result = match_boxes(expected, &found, iou);
                let f1 = result.f1();
                let held = f1 + 1e-9 >= minimum;
                let not = if self.negated { "not " } else { "" };
                let reason = format!(
                    "expected the boxes {not}to match with F1 ≥ {minimum}, F1 was {f1:.3}: {}",
                    describe_match(&result, iou)
                );
                let score = if self.negated { 1.0 - f1 } else { f1 };
                (held != self.negated, score, reason)
            }
        };
        self.scored_outcome(passed, score, reason)
    }

    /// Scored by the metric itself, so a near miss counts for more than a miss.
    pub(super) fn check_text_metric(
        &self,
        metric: TextMetric,
        reference: &str,
        others: &[String],
        input: &CheckInput,
    ) -> AssertionOutcome {
        let minimum = self.threshold.unwrap_or(metric.default_threshold());
        let value = match self.dialect.metrics() {
            Metrics::Promptfoo => match metric {
                TextMetric::Rouge(1) => promptfoo_metrics::rouge_n(input.output, reference, 1),
                TextMetric::Bleu => {
                    let mut all = vec![reference.to_string()];
                    all.extend(others.iter().cloned());
                    promptfoo_metrics::bleu(input.output, &all)
                }
                other => Some(other.score(input.output, reference)),
            },
            Metrics::Reference => Some(metric.score(input.output, reference)),
        };
        let Some(value) = value else {
            // promptfoo throws here, which fails the test.
            let reason = format!(
                "{} cannot be computed for an empty text; output was {}",
                metric.name(),
                excerpt(input.output)
            );
            return self.scored_outcome(false, 0.0, reason);
        };
        let held = value + 1e-9 >= minimum;
        let passed = held != self.negated;
        let not = if self.negated { "not " } else { "" };
        let reason = format!(
            "expected {} {not}to be at least {minimum} against {}; it was {value:.3}; output was {}",
            metric.name(),
            excerpt(reference),
            excerpt(input.output)
        );
        let score = if self.negated { 1.0 - value } else { value };
        self.scored_outcome(passed, score, reason)
    }

    pub(super) fn check_similar(
        &self,
        reference: &str,
        model: Option<&std::path::Path>,
        input: &CheckInput,
    ) -> AssertionOutcome {
        let minimum = self.threshold.unwrap_or(DEFAULT_SIMILARITY);
        let similarity = match model {
            None => {
                Err("no embedding model (add a `kind: embedding` model to the catalog)".to_string())
            }
            Some(dir) => crate::score::similarity::embedder(dir)
                .and_then(|e| e.similarity(input.output, reference))
                .map_err(|e| e.to_string()),
        };
        let (passed, score, reason) = match similarity {
            // Could not be judged: both forms fail.
            Err(why) => (false, 0.0, why),
            Ok(value) => {
                let held = value + 1e-9 >= minimum;
                let not = if self.negated { "not " } else { "" };
                let value01 = value.clamp(0.0, 1.0);
                (
                    held != self.negated,
                    if self.negated { 1.0 - value01 } else { value01 },
                    format!(
                        "expected the output {not}to be similar to {} (cosine ≥ {minimum}); it was {value:.3}; output was {}",
                        excerpt(reference),
                        excerpt(input.output)
                    ),
                )
            }
        };
        self.scored_outcome(passed, score, reason)
    }

    /// The outcome of a scored check; the reason is kept only for a failure.
    fn scored_outcome(&self, passed: bool, score: f64, reason: String) -> AssertionOutcome {
        AssertionOutcome {
            named_scores: Default::default(),
            metric: None,
            assertion: self.type_name(),
            passed,
            score,
            weight: self.weight,
            reason: (!passed).then_some(reason),
            judge_error: None,
        }
    }

    /// A model-graded outcome before (or instead of) a verdict: neither pass nor fail.
    pub fn unjudged(&self, why: String) -> AssertionOutcome {
        AssertionOutcome {
            named_scores: Default::default(),
            metric: self.metric.clone(),
            assertion: self.type_name(),
            passed: false,
            score: 0.0,
            weight: self.weight,
            reason: None,
            judge_error: Some(why),
        }
    }
}
