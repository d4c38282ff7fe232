//! promptfoo's `gleu` (Google-BLEU): the minimum of n-gram precision and recall over 1-
//! to 4-grams, lowercased words split on whitespace with trailing dots dropped, the best
//! over the references.

use std::collections::HashMap;

use super::*;

/// promptfoo's default minimum.
const DEFAULT_THRESHOLD: f64 = 0.5;

fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let trimmed = lower.trim();
    if trimmed.is_empty() {
        // JavaScript's `''.split(/\s+/)` is `['']`.
        return vec![String::new()];
    }
    trimmed
        .split_whitespace()
        .map(|w| w.trim_end_matches('.').to_string())
        .collect()
}

fn ngrams(words: &[String], n: usize) -> Vec<String> {
    if n == 0 || n > words.len() {
        return Vec::new();
    }
    words.windows(n).map(|w| w.join(" ")).collect()
}

/// GLEU of `candidate` against each reference, the best of them.
pub fn gleu(candidate: &str, references: &[String]) -> f64 {
    let candidate = words(candidate);
    references
        .iter()
        .map(|reference| {
            let reference = words(reference);
            if candidate == reference {
                return 1.0;
            }
            let (mut matches, mut candidate_total, mut reference_total) = (0usize, 0usize, 0usize);
            for n in 1..=4 {
                let ours = ngrams(&candidate, n);
                let theirs = ngrams(&reference, n);
                let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
                for gram in &ours {
                    counts.entry(gram).or_default().0 += 1;
                }
                for gram in &theirs {
                    counts.entry(gram).or_default().1 += 1;
                }
                matches += counts.values().map(|(a, b)| (*a).min(*b)).sum::<usize>();
                candidate_total += ours.len();
                reference_total += theirs.len();
            }
            if candidate_total == 0 || reference_total == 0 {
                return 0.0;
            }
            let precision = matches as f64 / candidate_total as f64;
            let recall = matches as f64 / reference_total as f64;
            precision.min(recall)
        })
        .fold(0.0, f64::max)
}

impl Assertion {
    /// As promptfoo: `not-gleu` passes below the threshold and scores `1 - GLEU`.
    pub(super) fn check_gleu(&self, references: &[String], input: &CheckInput) -> AssertionOutcome {
        if input.output.is_empty() {
            return self.failed("gleu: the output is empty".into());
        }
        self.reference_score("GLEU", gleu(input.output, references))
    }

    /// promptfoo's `meteor`: the best METEOR score against the references.
    pub(super) fn check_meteor(
        &self,
        references: &[String],
        input: &CheckInput,
    ) -> AssertionOutcome {
        use crate::score::meteor::{MeteorError, meteor, wordnet::WordNet};
        let scored = WordNet::shared()
            .map_err(MeteorError::from)
            .and_then(|wordnet| meteor(input.output, references, &wordnet));
        match scored {
            Ok(score) => self.reference_score("METEOR", score),
            Err(why) => self.failed(format!("meteor: {why}")),
        }
    }

    /// promptfoo's reference scores (GLEU, METEOR): pass at the threshold (default 0.5)
    /// or above; negated, below it, scoring 1 − the score.
    fn reference_score(&self, name: &str, score: f64) -> AssertionOutcome {
        let threshold = self.threshold.unwrap_or(DEFAULT_THRESHOLD);
        let passed = (score >= threshold) != self.negated;
        let direction = if self.negated { "at least" } else { "below" };
        AssertionOutcome {
            named_scores: Default::default(),
            metric: None,
            assertion: self.type_name(),
            passed,
            score: if self.negated { 1.0 - score } else { score },
            weight: self.weight,
            reason: (!passed)
                .then(|| format!("{name} {score:.4} is {direction} the threshold {threshold}")),
            judge_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gleu_matches_promptfoo() {
        let refs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(gleu("The cat sat.", &refs(&["the cat sat"])), 1.0);
        // 3 of 4 unigrams, 2 of 3 bigrams, 1 of 2 trigrams, 0 of 1 4-gram: 6 of 10.
        let score = gleu("the cat sat down", &refs(&["the cat sat up"]));
        assert!((score - 0.6).abs() < 1e-12, "{score}");
        assert_eq!(gleu("nothing alike", &refs(&["completely different"])), 0.0);
        let best = gleu("a b c", &refs(&["x y z", "a b c d"]));
        assert!(best > 0.5 && best < 1.0, "{best}");
    }
}
