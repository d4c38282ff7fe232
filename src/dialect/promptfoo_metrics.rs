//! promptfoo's own text metrics, which are not the published ones: `rouge-n` is js-rouge's
//! `n()` (ROUGE-1 F1 over case-sensitive Penn Treebank tokens of each sentence, any
//! script), `bleu` is promptfoo's sentence BLEU (lower-cased whitespace words, clipped
//! counts maxed over references, 1e-7 smoothing), and `contains-any` splits a string on
//! commas outside double quotes. The regexes are js-rouge's and promptfoo's, run in the
//! ECMAScript engine they were written for.

use std::collections::HashMap;
use std::sync::LazyLock;

fn ecma(source: &str, flags: &str) -> regress::Regex {
    regress::Regex::with_flags(source, flags).expect("valid ECMAScript regex")
}

/// js-rouge's `treeBankTokenize`, without its quote-pairing heuristics (a `"` opens after
/// a space or at the start, else closes).
fn treebank(text: &str) -> Vec<String> {
    static SPACE: LazyLock<regress::Regex> = LazyLock::new(|| ecma(r"[\s\u0085]+", "g"));
    static OPEN_QUOTE: LazyLock<regress::Regex> =
        LazyLock::new(|| ecma(r#"(^|[\s\p{Ps}<])""#, "u"));
    static STEPS: LazyLock<Vec<(regress::Regex, &'static str)>> = LazyLock::new(|| {
        vec![
            (ecma(r"\.{3}", ""), " ... "),
            (ecma(r"[:,](?!\p{Nd})", "u"), " $0 "),
            (ecma(r"[;@#$%&]", ""), " $0 "),
            (
                ecma(r"([^.])(?<!\b[A-Za-z]\.[A-Za-z])(\.)([\])}>'\s]*)$", ""),
                "$1 $2$3 ",
            ),
            (ecma(r"[?!]", ""), " $0 "),
            (ecma(r"[\][(){}<>]", ""), " $0 "),
            (ecma(r"--", ""), " -- "),
        ]
    });
    static ENDINGS: LazyLock<Vec<(regress::Regex, &'static str)>> = LazyLock::new(|| {
        vec![
            (ecma(r"([^'])' ", ""), "$1 ' "),
            (ecma(r"'([sSmMdD]) ", ""), " '$1 "),
            (ecma(r"('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", ""), " $1 "),
        ]
    });
    static CONTRACTIONS: LazyLock<Vec<regress::Regex>> = LazyLock::new(|| {
        let word = r"[\p{ID_Continue}\u200c\u200d]";
        [
            "(can)(not)",
            "(d)('ye)",
            "(gim)(me)",
            "(gon)(na)",
            "(got)(ta)",
            "(lem)(me)",
            "(more)('n)",
            "(wan)(na)(?= )",
            "('t)(is)",
            "('t)(was)",
        ]
        .iter()
        .map(|p| ecma(&format!("(?<!{word}){p}(?!{word})"), "iu"))
        .collect()
    });
    let text = SPACE.replace_all(text, " ");
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let mut r = String::new();
    let mut rest = text;
    // Straight double quotes: `` when opening, '' when closing.
    while let Some(at) = rest.find('"') {
        let before = &rest[..at];
        let opens = OPEN_QUOTE
            .find(&format!(
                "{}\"",
                before.chars().last().map(String::from).unwrap_or_default()
            ))
            .is_some()
            || (before.is_empty() && r.is_empty());
        r.push_str(before);
        r.push_str(if opens { " `` " } else { " '' " });
        rest = &rest[at + 1..];
    }
    r.push_str(rest);
    for (re, with) in STEPS.iter() {
        r = re.replace_all(&r, with);
    }
    let mut r = format!(" {r} ");
    for (re, with) in ENDINGS.iter() {
        r = re.replace_all(&r, with);
    }
    for re in CONTRACTIONS.iter() {
        r = re.replace_all(&r, " $1 $2 ");
    }
    r.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sentences as js-rouge's segmenter mostly finds them: after `.`, `!` or `?` and space.
fn sentences(text: &str) -> Vec<&str> {
    static END: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"[.!?]+[\s]+").expect("valid regex"));
    let mut out = Vec::new();
    let mut start = 0;
    for m in END.find_iter(text) {
        out.push(&text[start..m.end()]);
        start = m.end();
    }
    out.push(&text[start..]);
    out
}

fn tokens(text: &str) -> Vec<String> {
    sentences(text).into_iter().flat_map(treebank).collect()
}

fn ngrams(tokens: &[String], n: usize) -> Vec<String> {
    if n == 0 || tokens.len() < n {
        return Vec::new();
    }
    tokens.windows(n).map(|w| w.join(" ")).collect()
}

/// Matches counted as a multiset intersection.
fn overlap(candidate: &[String], reference: &[String]) -> usize {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for gram in reference {
        *counts.entry(gram).or_default() += 1;
    }
    candidate
        .iter()
        .filter(|gram| match counts.get_mut(gram.as_str()) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// js-rouge `n(candidate, reference, {n})`; None where it throws (a blank text).
pub fn rouge_n(candidate: &str, reference: &str, n: usize) -> Option<f64> {
    if candidate.trim().is_empty() || reference.trim().is_empty() {
        return None;
    }
    let (c, r) = (tokens(candidate), tokens(reference));
    if c.len() < n || r.len() < n {
        return Some(0.0);
    }
    let (c, r) = (ngrams(&c, n), ngrams(&r, n));
    let matches = overlap(&c, &r) as f64;
    if matches == 0.0 {
        return Some(0.0);
    }
    let (p, rc) = (matches / c.len() as f64, matches / r.len() as f64);
    Some(if p == rc { p } else { 2.0 * p * rc / (p + rc) })
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .trim()
        .split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// JavaScript's `s.trim().split(/\s+/)`: an empty text is one empty word.
fn js_words(text: &str) -> Vec<String> {
    let w = words(text);
    if w.is_empty() { vec![String::new()] } else { w }
}

/// promptfoo's `calculateBleuScore`; None where it throws (an empty output or no reference).
pub fn bleu(candidate: &str, references: &[String]) -> Option<f64> {
    if candidate.is_empty() || references.is_empty() {
        return None;
    }
    let cand = js_words(candidate);
    let refs: Vec<Vec<String>> = references.iter().map(|r| js_words(r)).collect();
    let closest = refs
        .iter()
        .map(Vec::len)
        .fold(None, |best: Option<usize>, len| match best {
            Some(b) if len.abs_diff(cand.len()) >= b.abs_diff(cand.len()) => Some(b),
            _ => Some(len),
        })?;
    let mut log_sum = 0.0;
    for n in 1..=4 {
        let grams = ngrams(&cand, n);
        let best = refs
            .iter()
            .map(|r| overlap(&grams, &ngrams(r, n)))
            .max()
            .unwrap_or(0);
        let precision = if grams.is_empty() {
            0.0
        } else {
            best as f64 / grams.len() as f64
        };
        log_sum += 0.25 * if precision == 0.0 { 1e-7f64 } else { precision }.ln();
    }
    let bp = if cand.len() > closest {
        1.0
    } else {
        (1.0 - closest as f64 / cand.len() as f64).exp()
    };
    Some(bp * log_sum.exp())
}

/// `contains-any`'s string value: `(".*?"|[^,]+)(?=\s*,|\s*$)`, trimmed, quotes removed.
pub fn split_quoted(text: &str) -> Vec<String> {
    static ITEM: LazyLock<regress::Regex> =
        LazyLock::new(|| ecma(r#"(".*?"|[^,]+)(?=\s*,|\s*$)"#, "g"));
    ITEM.find_iter(text)
        .map(|m| {
            let item = text[m.range()].trim();
            let item = item.strip_prefix('"').unwrap_or(item);
            item.strip_suffix('"').unwrap_or(item).to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_is_case_sensitive_and_reads_any_script() {
        assert_eq!(rouge_n("The cat sat.", "The cat sat.", 1), Some(1.0));
        let s = rouge_n("the cat sat", "The cat sat", 1).unwrap();
        assert!((s - 2.0 / 3.0).abs() < 1e-9, "{s}");
        assert_eq!(rouge_n("東京 は 首都", "東京 は 首都", 1), Some(1.0));
        assert_eq!(rouge_n(" ", "x", 1), None);
        assert_eq!(
            treebank("He said, \"don't go!\" (ok)."),
            [
                "He", "said", ",", "``", "do", "n't", "go", "!", "''", "(", "ok", ")", "."
            ]
        );
    }

    #[test]
    fn bleu_takes_the_best_reference() {
        let refs = [
            "a completely different text".to_string(),
            "the cat is on the mat".to_string(),
        ];
        assert!((bleu("the cat is on the mat", &refs).unwrap() - 1.0).abs() < 1e-9);
        assert!(bleu("the cat", &refs[1..]).unwrap() < 0.01);
        assert_eq!(bleu("", &refs), None);
    }

    #[test]
    fn quoted_commas_stay_inside_an_item() {
        assert_eq!(split_quoted(r#""a, b", c"#), ["a, b", "c"]);
        assert_eq!(split_quoted("x, y ,z"), ["x", "y", "z"]);
    }
}
