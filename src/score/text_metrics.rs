//! Reference-based text metrics for open-ended outputs, computed as the reference
//! implementations compute them so that figures compare with published ones: ROUGE-N and
//! ROUGE-L F-measure as Google's `rouge-score` (no stemming), and sentence-level BLEU and
//! chrF as `sacrebleu` with its defaults (13a tokenizer, exponential smoothing, effective
//! order; character 6-grams, β = 2). `tests/fixtures/text-metrics.json` pins both.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::LazyLock;

use regex::Regex;

fn counts<T: Eq + Hash>(items: impl Iterator<Item = T>) -> HashMap<T, usize> {
    let mut map = HashMap::new();
    for item in items {
        *map.entry(item).or_insert(0) += 1;
    }
    map
}

/// The harmonic mean, 0 when both are 0 (rouge-score's `fmeasure`).
fn f_measure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

static NON_ALPHANUMERIC: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[^a-z0-9]+").unwrap());

/// rouge-score's tokenizer: lowercase, anything but ASCII letters and digits separates.
fn rouge_tokens(text: &str) -> Vec<String> {
    NON_ALPHANUMERIC
        .replace_all(&text.to_lowercase(), " ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// ROUGE-N F-measure of `output` against `reference` (0 to 1).
pub fn rouge_n(output: &str, reference: &str, n: usize) -> f64 {
    let ngrams = |tokens: &[String]| counts(tokens.windows(n.max(1)).map(<[String]>::to_vec));
    let (predicted, target) = (
        ngrams(&rouge_tokens(output)),
        ngrams(&rouge_tokens(reference)),
    );
    let overlap: usize = target
        .iter()
        .map(|(gram, count)| (*count).min(predicted.get(gram).copied().unwrap_or(0)))
        .sum();
    let total = |m: &HashMap<Vec<String>, usize>| m.values().sum::<usize>().max(1) as f64;
    f_measure(
        overlap as f64 / total(&predicted),
        overlap as f64 / total(&target),
    )
}

/// ROUGE-L F-measure: the longest common subsequence of tokens (0 to 1).
pub fn rouge_l(output: &str, reference: &str) -> f64 {
    let (predicted, target) = (rouge_tokens(output), rouge_tokens(reference));
    if predicted.is_empty() || target.is_empty() {
        return 0.0;
    }
    // One row of the LCS table at a time.
    let mut previous = vec![0usize; predicted.len() + 1];
    for t in &target {
        let mut row = vec![0usize; predicted.len() + 1];
        for (j, p) in predicted.iter().enumerate() {
            row[j + 1] = if t == p {
                previous[j] + 1
            } else {
                row[j].max(previous[j + 1])
            };
        }
        previous = row;
    }
    let lcs = previous[predicted.len()] as f64;
    f_measure(lcs / predicted.len() as f64, lcs / target.len() as f64)
}

/// sacrebleu's `13a` tokenizer (mteval-v13a, as used by WMT).
fn tokenize_13a(text: &str) -> Vec<String> {
    static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        [
            // Punctuation and symbols become tokens.
            (Regex::new(r"([{-~\[-` -&(-+:-@/])").unwrap(), " ${1} "),
            // Period and comma, unless preceded by a digit…
            (Regex::new(r"([^0-9])([.,])").unwrap(), "${1} ${2} "),
            // …or followed by one.
            (Regex::new(r"([.,])([^0-9])").unwrap(), " ${1} ${2}"),
            // A dash after a digit.
            (Regex::new(r"([0-9])(-)").unwrap(), "${1} ${2} "),
        ]
    });
    let mut line = text
        .trim_end()
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (rule, replacement) in RULES.iter() {
        line = rule.replace_all(&line, *replacement).into_owned();
    }
    python_split(&line).map(str::to_string).collect()
}

/// Python's `str.split()` whitespace, which sacrebleu splits on: Rust's
/// `char::is_whitespace` plus the information separators U+001C–U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `text.split()` as Python does it.
fn python_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_python_whitespace).filter(|s| !s.is_empty())
}

const BLEU_ORDER: usize = 4;

/// Sentence BLEU (0 to 100), as `sacrebleu.sentence_bleu(output, [reference])`.
pub fn bleu(output: &str, reference: &str) -> f64 {
    let (hypothesis, reference) = (tokenize_13a(output), tokenize_13a(reference));
    let ngrams = |tokens: &[String], n: usize| counts(tokens.windows(n).map(<[String]>::to_vec));
    let mut correct = [0usize; BLEU_ORDER];
    let mut total = [0usize; BLEU_ORDER];
    for n in 1..=BLEU_ORDER {
        let (hyp, refs) = (ngrams(&hypothesis, n), ngrams(&reference, n));
        total[n - 1] = hyp.values().sum();
        correct[n - 1] = hyp
            .iter()
            .map(|(gram, count)| (*count).min(refs.get(gram).copied().unwrap_or(0)))
            .sum();
    }
    let (sys_len, ref_len) = (hypothesis.len() as f64, reference.len() as f64);
    let brevity = if sys_len < ref_len {
        if sys_len > 0.0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if correct.iter().all(|c| *c == 0) {
        return 0.0;
    }
    // Exponential smoothing (NIST) with the effective order: orders the output is too
    // short to have are left out rather than zeroing the score.
    let mut precisions = [0.0f64; BLEU_ORDER];
    let mut smooth = 1.0;
    let mut effective_order = BLEU_ORDER;
    for n in 1..=BLEU_ORDER {
        if total[n - 1] == 0 {
            break;
        }
        effective_order = n;
        precisions[n - 1] = if correct[n - 1] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n - 1] as f64)
        } else {
            100.0 * correct[n - 1] as f64 / total[n - 1] as f64
        };
    }
    let log = |p: f64| if p > 0.0 { p.ln() } else { -9_999_999_999.0 };
    let mean_log = precisions[..effective_order]
        .iter()
        .map(|p| log(*p))
        .sum::<f64>()
        / effective_order as f64;
    brevity * mean_log.exp()
}

const CHRF_ORDER: usize = 6;
const CHRF_BETA: f64 = 2.0;

/// Sentence chrF (0 to 100), as `sacrebleu.sentence_chrf(output, [reference])`:
/// character 1- to 6-grams with whitespace removed, recall weighted by β = 2.
pub fn chrf(output: &str, reference: &str) -> f64 {
    let squeeze = |s: &str| -> Vec<char> { python_split(s).flat_map(str::chars).collect() };
    let (hypothesis, reference) = (squeeze(output), squeeze(reference));
    let factor = CHRF_BETA * CHRF_BETA;
    let (mut precision_sum, mut recall_sum, mut effective_order) = (0.0, 0.0, 0usize);
    for n in 1..=CHRF_ORDER {
        let hyp = counts(hypothesis.windows(n));
        let refs = counts(reference.windows(n));
        let matched: usize = hyp
            .iter()
            .map(|(gram, count)| (*count).min(refs.get(gram).copied().unwrap_or(0)))
            .sum();
        let hyp_count = if refs.is_empty() {
            0
        } else {
            hyp.values().sum::<usize>()
        };
        let ref_count: usize = refs.values().sum();
        if hyp_count > 0 && ref_count > 0 {
            precision_sum += matched as f64 / hyp_count as f64;
            recall_sum += matched as f64 / ref_count as f64;
            effective_order += 1;
        }
    }
    if effective_order == 0 {
        return 0.0;
    }
    let precision = precision_sum / effective_order as f64;
    let recall = recall_sum / effective_order as f64;
    if precision + recall == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * precision * recall / (factor * precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of the fixture, against rouge-score and sacrebleu (see
    /// scripts/text_metrics_fixture.py).
    #[test]
    fn match_the_reference_implementations() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/text-metrics.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 50);
        let mut failures = Vec::new();
        for case in cases {
            let output = case["output"].as_str().unwrap();
            let reference = case["reference"].as_str().unwrap();
            let ours = [
                ("rouge1", rouge_n(output, reference, 1)),
                ("rouge2", rouge_n(output, reference, 2)),
                ("rougeL", rouge_l(output, reference)),
                ("bleu", bleu(output, reference)),
                ("chrf", chrf(output, reference)),
            ];
            for (metric, value) in ours {
                let expected = case[metric].as_f64().unwrap();
                if (value - expected).abs() > 1e-6 {
                    failures.push(format!(
                        "{metric}({output:?}, {reference:?}) = {value}, reference {expected}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn tokenizer_13a_splits_like_mteval() {
        assert_eq!(
            tokenize_13a("It costs $1,000.50 in 2024-2025."),
            [
                "It", "costs", "$", "1,000.50", "in", "2024", "-", "2025", "."
            ]
        );
    }
}
