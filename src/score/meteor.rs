//! METEOR as promptfoo 0.118 computes it (src/assertions/meteor.ts): words split on
//! whitespace with trailing dots removed and lower-cased, matched exactly, then by
//! natural's Porter stems, then by WordNet synonyms of the stems; the score is the
//! harmonic mean weighted by `alpha` times the fragmentation penalty `gamma ·
//! (chunks / matches)^beta`, the best over the references. It is not NLTK's METEOR
//! (which aligns differently and looks synonyms up by lemma), and follows promptfoo where
//! the two differ.

pub mod porter;
pub mod wordnet;

use wordnet::{WordNet, is_js_space};

/// promptfoo's defaults.
pub const ALPHA: f64 = 0.9;
pub const BETA: f64 = 3.0;
pub const GAMMA: f64 = 0.5;

/// Why there is no METEOR score.
#[derive(Debug, thiserror::Error)]
pub enum MeteorError {
    /// promptfoo's "Invalid inputs": an empty candidate or no references.
    #[error("meteor needs a non-empty output and at least one reference")]
    InvalidInputs,
    #[error(transparent)]
    WordNet(#[from] wordnet::WordNetError),
}

/// The best METEOR score of `candidate` against `references`, or why there is none.
pub fn meteor(
    candidate: &str,
    references: &[String],
    wordnet: &WordNet,
) -> Result<f64, MeteorError> {
    if candidate.is_empty() || references.is_empty() {
        return Err(MeteorError::InvalidInputs);
    }
    let words = |text: &str| -> Vec<String> {
        js_split_whitespace(text)
            .into_iter()
            .map(|w| w.trim_end_matches('.').to_string())
            .collect()
    };
    let candidate = words(candidate);
    Ok(references
        .iter()
        .map(|reference| single_score(&words(reference), &candidate, wordnet))
        .fold(f64::NEG_INFINITY, f64::max))
}

/// JavaScript's `text.split(/\s+/)` (empty fields at a leading or trailing space).
fn js_split_whitespace(text: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if is_js_space(c) {
            fields.push(&text[start..at]);
            let mut end = at + c.len_utf8();
            while let Some(&(next, c)) = chars.peek() {
                if !is_js_space(c) {
                    break;
                }
                end = next + c.len_utf8();
                chars.next();
            }
            start = end;
        }
    }
    fields.push(&text[start..]);
    fields
}

type Enumerated = Vec<(usize, String)>;

/// promptfoo's `matchExactEnums`: from the last candidate word back, each takes the last
/// equal reference word still free.
fn match_exact(
    mut candidate: Enumerated,
    mut reference: Enumerated,
) -> (Vec<(usize, usize)>, Enumerated, Enumerated) {
    let mut matches = Vec::new();
    for i in (0..candidate.len()).rev() {
        if let Some(j) = (0..reference.len())
            .rev()
            .find(|&j| candidate[i].1 == reference[j].1)
        {
            matches.push((candidate[i].0, reference[j].0));
            candidate.remove(i);
            reference.remove(j);
        }
    }
    (matches, candidate, reference)
}

/// promptfoo's `matchSynonymEnums`: a candidate word matches a reference word that is the
/// word itself or one of its WordNet synonyms without an underscore.
fn match_synonyms(
    mut candidate: Enumerated,
    mut reference: Enumerated,
    wordnet: &WordNet,
) -> Vec<(usize, usize)> {
    let mut matches = Vec::new();
    for i in (0..candidate.len()).rev() {
        let word = &candidate[i].1;
        let mut synonyms = wordnet.synonyms(word);
        synonyms.retain(|s| !s.contains('_'));
        synonyms.insert(word.clone());
        if let Some(j) = (0..reference.len())
            .rev()
            .find(|&j| synonyms.contains(&reference[j].1))
        {
            matches.push((candidate[i].0, reference[j].0));
            candidate.remove(i);
            reference.remove(j);
        }
    }
    matches
}

/// Chunks: runs of matches adjacent in both texts, over the matches sorted by candidate
/// position.
fn count_chunks(matches: &[(usize, usize)]) -> usize {
    if matches.is_empty() {
        return 0;
    }
    1 + matches
        .windows(2)
        .filter(|pair| pair[1].0 != pair[0].0 + 1 || pair[1].1 != pair[0].1 + 1)
        .count()
}

fn single_score(reference: &[String], candidate: &[String], wordnet: &WordNet) -> f64 {
    let enumerate = |words: &[String]| -> Enumerated {
        words
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.to_lowercase()))
            .collect()
    };
    let (candidate_words, reference_words) = (enumerate(candidate), enumerate(reference));
    let (translation_length, reference_length) = (candidate_words.len(), reference_words.len());
    let (exact, candidate_left, reference_left) = match_exact(candidate_words, reference_words);
    let stem_all = |words: Enumerated| -> Enumerated {
        words
            .into_iter()
            .map(|(i, w)| (i, porter::stem(&w)))
            .collect()
    };
    // Synonyms are then looked up for the stems, as promptfoo does.
    let (stemmed, candidate_left, reference_left) =
        match_exact(stem_all(candidate_left), stem_all(reference_left));
    let synonyms = match_synonyms(candidate_left, reference_left, wordnet);
    let mut all: Vec<(usize, usize)> = exact.into_iter().chain(stemmed).chain(synonyms).collect();
    all.sort_by_key(|m| m.0);
    let matched = all.len();
    if matched == 0 || translation_length == 0 || reference_length == 0 {
        return 0.0;
    }
    let precision = matched as f64 / translation_length as f64;
    let recall = matched as f64 / reference_length as f64;
    let denominator = ALPHA * precision + (1.0 - ALPHA) * recall;
    if denominator == 0.0 {
        return 0.0;
    }
    let fmean = precision * recall / denominator;
    let fragmentation = count_chunks(&all) as f64 / matched as f64;
    let penalty = GAMMA * fragmentation.powf(BETA);
    (1.0 - penalty) * fmean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_javascript() {
        assert_eq!(js_split_whitespace(" a  b\n"), vec!["", "a", "b", ""]);
        assert_eq!(js_split_whitespace("a"), vec!["a"]);
        assert_eq!(js_split_whitespace(""), vec![""]);
    }

    /// promptfoo's own scores for 400 pairs (tests/fixtures/meteor-promptfoo.json, made
    /// by scripts/meteor_fixture.js), with WordNet from `scripts/fetch-wordnet.sh`.
    #[test]
    fn scores_equal_promptfoos() {
        let wordnet = WordNet::shared().expect("WordNet: run bash scripts/fetch-wordnet.sh");
        let fixture: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/meteor-promptfoo.json"))
                .expect("fixture");
        assert_eq!(fixture.len(), 400);
        let mut wrong = Vec::new();
        for case in &fixture {
            let candidate = case["candidate"].as_str().expect("candidate");
            let references: Vec<String> = case["references"]
                .as_array()
                .expect("references")
                .iter()
                .map(|r| r.as_str().expect("text").to_string())
                .collect();
            let want = case["score"].as_f64().expect("score");
            let got = meteor(candidate, &references, &wordnet).expect("scores");
            if (got - want).abs() > 1e-12 {
                wrong.push(format!(
                    "{candidate:?} vs {references:?}: {got} (promptfoo {want})"
                ));
            }
        }
        assert!(wrong.is_empty(), "{} differ: {wrong:#?}", wrong.len());
        assert!(meteor("", &["a".into()], &wordnet).is_err());
    }

    #[test]
    fn chunks_count_adjacent_runs() {
        assert_eq!(count_chunks(&[]), 0);
        assert_eq!(count_chunks(&[(0, 0), (1, 1), (2, 2)]), 1);
        assert_eq!(count_chunks(&[(0, 0), (1, 2), (2, 3)]), 2);
    }
}
