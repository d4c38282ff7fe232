//! The Porter stemmer of the `natural` npm package (lib/natural/stemmers/porter_stemmer.js),
//! which promptfoo's `meteor` uses. A line-by-line port, quirks included (its measure can
//! be a half, its step 2 applies every matching rule in turn), so stems are the same;
//! `tests/fixtures/porter-natural.tsv` holds natural's stems to compare with. Words are
//! handled by `char`, which equals natural's UTF-16 units for the Basic Multilingual Plane.

use std::sync::LazyLock;

use regex::Regex;

/// natural's `PorterStemmer.stem`.
pub fn stem(token: &str) -> String {
    if token.chars().count() < 3 {
        return token.to_string();
    }
    let token = token.to_lowercase();
    step5b(&step5a(&step4(&step3(&step2(&step1c(&step1b(&step1a(
        &token,
    ))))))))
}

fn regex(pattern: &str) -> Regex {
    // The patterns are literals of this file.
    Regex::new(pattern).unwrap_or_else(|e| panic!("porter pattern {pattern}: {e}"))
}

/// Runs of consonants as `C`, of vowels as `V` (a `y` after a consonant is a vowel).
fn categorize_groups(token: &str) -> String {
    static CONSONANTS_Y: LazyLock<Regex> = LazyLock::new(|| regex("[^aeiouy]+y"));
    static VOWELS: LazyLock<Regex> = LazyLock::new(|| regex("[aeiou]+"));
    static OTHERS: LazyLock<Regex> = LazyLock::new(|| regex("[^V]+"));
    let token = CONSONANTS_Y.replace_all(token, "CV");
    let token = VOWELS.replace_all(&token, "V");
    OTHERS.replace_all(&token, "C").into_owned()
}

/// Each consonant as `C`, each vowel as `V`.
fn categorize_chars(token: &str) -> String {
    static CONSONANT_Y: LazyLock<Regex> = LazyLock::new(|| regex("[^aeiouy]y"));
    static VOWEL: LazyLock<Regex> = LazyLock::new(|| regex("[aeiou]"));
    static OTHER: LazyLock<Regex> = LazyLock::new(|| regex("[^V]"));
    let token = CONSONANT_Y.replace_all(token, "CV");
    let token = VOWEL.replace_all(&token, "V");
    OTHER.replace_all(&token, "C").into_owned()
}

/// The count of VC sequences; -1 for no word (natural's `!token`), and a half where two
/// vowel groups touch.
fn measure(token: Option<&str>) -> f64 {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return -1.0;
    };
    let groups = categorize_groups(token);
    let groups = groups.strip_prefix('C').unwrap_or(&groups);
    let groups = groups.strip_suffix('V').unwrap_or(groups);
    groups.chars().count() as f64 / 2.0
}

/// JavaScript's `s.substr(-n)`.
fn last(token: &str, n: usize) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

fn ends_with_double_consonant(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    matches!(chars.as_slice(), [.., a, b] if a == b && !"aeiou".contains(*a))
}

/// A suffix or a pattern to replace.
enum Pattern<'a> {
    Suffix(&'a str),
    Regex(&'a Regex),
}

/// natural's `attemptReplace`: the replaced word, or None when the pattern does not match.
/// An empty result is falsy in JavaScript, so callers treat `Some("")` as no match.
fn attempt_replace(
    token: &str,
    pattern: &Pattern,
    replacement: &str,
    callback: Option<&dyn Fn(String) -> Option<String>>,
) -> Option<String> {
    let result = match pattern {
        Pattern::Suffix(suffix) if token.ends_with(suffix) => Some(format!(
            "{}{replacement}",
            &token[..token.len() - suffix.len()]
        )),
        Pattern::Suffix(_) => None,
        Pattern::Regex(re) if re.is_match(token) => {
            Some(re.replace(token, replacement).into_owned())
        }
        Pattern::Regex(_) => None,
    };
    match (result, callback) {
        (Some(result), Some(callback)) if !result.is_empty() => callback(result),
        (result, _) => result,
    }
}

fn truthy(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// natural's `attemptReplacePatterns`: every rule whose replacement (on the original word)
/// leaves a measure above `threshold` is applied, in turn, to the running result.
fn attempt_replace_patterns(
    token: &str,
    replacements: &[(&str, &str, &str)],
    threshold: Option<f64>,
) -> String {
    let mut replacement = token.to_string();
    for (pattern, checked, applied) in replacements {
        let pattern = Pattern::Suffix(pattern);
        let applies = threshold.is_none_or(|threshold| {
            measure(attempt_replace(token, &pattern, checked, None).as_deref()) > threshold
        });
        if applies {
            replacement = truthy(attempt_replace(&replacement, &pattern, applied, None))
                .unwrap_or(replacement);
        }
    }
    replacement
}

fn replace_patterns(token: &str, replacements: &[(&str, &str, &str)], threshold: f64) -> String {
    let replaced = attempt_replace_patterns(token, replacements, Some(threshold));
    if replaced.is_empty() {
        token.to_string()
    } else {
        replaced
    }
}

/// natural's `replaceRegex`: the chosen groups of a match, when their measure is above
/// `minimum`.
fn replace_regex(token: &str, re: &Regex, parts: &[usize], minimum: f64) -> Option<String> {
    let result: String = match re.captures(token) {
        Some(captures) => parts
            .iter()
            .map(|&i| captures.get(i).map_or("", |m| m.as_str()))
            .collect(),
        None => String::new(),
    };
    (measure(Some(&result)) > minimum).then_some(result)
}

fn step1a(token: &str) -> String {
    static SSES_IES: LazyLock<Regex> = LazyLock::new(|| regex("(ss|i)es$"));
    if SSES_IES.is_match(token) {
        return SSES_IES.replace(token, "$1").into_owned();
    }
    let chars: Vec<char> = token.chars().collect();
    if chars.last() == Some(&'s') && chars.len() > 2 && chars[chars.len() - 2] != 's' {
        return chars[..chars.len() - 1].iter().collect();
    }
    token.to_string()
}

fn step1b(token: &str) -> String {
    static ED_ING: LazyLock<Regex> = LazyLock::new(|| regex("(ed|ing)$"));
    if last(token, 3) == "eed" {
        let stem = &token[..token.len() - 3];
        if measure(Some(stem)) > 0.0 {
            return format!("{stem}ee");
        }
        return token.to_string();
    }
    let after_suffix = |token: String| -> Option<String> {
        if !categorize_groups(&token).contains('V') {
            return None;
        }
        let result = attempt_replace_patterns(
            &token,
            &[("at", "", "ate"), ("bl", "", "ble"), ("iz", "", "ize")],
            None,
        );
        if result != token {
            return Some(result);
        }
        let last_char = token.chars().last();
        if ends_with_double_consonant(&token) && last_char.is_some_and(|c| !"lsz".contains(c)) {
            let mut chars: Vec<char> = token.chars().collect();
            chars.pop();
            return Some(chars.into_iter().collect());
        }
        if measure(Some(&token)) == 1.0
            && last(&categorize_chars(&token), 3) == "CVC"
            && last_char.is_some_and(|c| !"wxy".contains(c))
        {
            return Some(format!("{token}e"));
        }
        Some(token)
    };
    truthy(attempt_replace(
        token,
        &Pattern::Regex(&ED_ING),
        "",
        Some(&after_suffix),
    ))
    .unwrap_or_else(|| token.to_string())
}

fn step1c(token: &str) -> String {
    let groups = categorize_groups(token);
    let before_last: String = {
        let chars: Vec<char> = groups.chars().collect();
        chars[..chars.len().saturating_sub(1)].iter().collect()
    };
    if token.ends_with('y') && before_last.contains('V') {
        return format!("{}i", &token[..token.len() - 1]);
    }
    token.to_string()
}

fn step2(token: &str) -> String {
    replace_patterns(
        token,
        &[
            ("ational", "", "ate"),
            ("tional", "", "tion"),
            ("enci", "", "ence"),
            ("anci", "", "ance"),
            ("izer", "", "ize"),
            ("abli", "", "able"),
            ("bli", "", "ble"),
            ("alli", "", "al"),
            ("entli", "", "ent"),
            ("eli", "", "e"),
            ("ousli", "", "ous"),
            ("ization", "", "ize"),
            ("ation", "", "ate"),
            ("ator", "", "ate"),
            ("alism", "", "al"),
            ("iveness", "", "ive"),
            ("fulness", "", "ful"),
            ("ousness", "", "ous"),
            ("aliti", "", "al"),
            ("iviti", "", "ive"),
            ("biliti", "", "ble"),
            ("logi", "", "log"),
        ],
        0.0,
    )
}

fn step3(token: &str) -> String {
    replace_patterns(
        token,
        &[
            ("icate", "", "ic"),
            ("ative", "", ""),
            ("alize", "", "al"),
            ("iciti", "", "ic"),
            ("ical", "", "ic"),
            ("ful", "", ""),
            ("ness", "", ""),
        ],
        0.0,
    )
}

fn step4(token: &str) -> String {
    static SUFFIXES: LazyLock<Regex> = LazyLock::new(|| {
        regex("^(.+?)(al|ance|ence|er|ic|able|ible|ant|ement|ment|ent|ou|ism|ate|iti|ous|ive|ize)$")
    });
    static ION: LazyLock<Regex> = LazyLock::new(|| regex("^(.+?)(s|t)(ion)$"));
    truthy(replace_regex(token, &SUFFIXES, &[1], 1.0))
        .or_else(|| truthy(replace_regex(token, &ION, &[1, 2], 1.0)))
        .unwrap_or_else(|| token.to_string())
}

fn step5a(token: &str) -> String {
    let without_e = token.strip_suffix('e').unwrap_or(token);
    let m = measure(Some(without_e));
    let chars: Vec<char> = categorize_chars(token).chars().collect();
    let start = chars.len().saturating_sub(4);
    let cvc: String = chars[start..(start + 3).min(chars.len())].iter().collect();
    let token_chars: Vec<char> = token.chars().collect();
    let second_to_last_ok =
        token_chars.len() >= 2 && !"wxy".contains(token_chars[token_chars.len() - 2]);
    if m > 1.0 || (m == 1.0 && !(cvc == "CVC" && second_to_last_ok)) {
        return without_e.to_string();
    }
    token.to_string()
}

fn step5b(token: &str) -> String {
    if measure(Some(token)) > 1.0
        && let Some(stem) = token.strip_suffix("ll")
    {
        return format!("{stem}l");
    }
    token.to_string()
}

#[cfg(test)]
mod tests {
    /// natural's own stems for 2,692 English words (tests/fixtures/porter-natural.tsv,
    /// made by scripts/meteor_fixture.js from natural 8 in promptfoo 0.118's install).
    #[test]
    fn stems_equal_naturals() {
        let fixture = include_str!("../../../tests/fixtures/porter-natural.tsv");
        let mut checked = 0;
        let mut wrong = Vec::new();
        for line in fixture.lines().filter(|l| !l.is_empty()) {
            let (word, want) = line.split_once('\t').expect("word<TAB>stem");
            if super::stem(word) != want {
                wrong.push(format!("{word}: {} (natural: {want})", super::stem(word)));
            }
            checked += 1;
        }
        assert!(checked >= 1000, "{checked}");
        assert!(
            wrong.is_empty(),
            "{} of {checked} differ: {wrong:?}",
            wrong.len()
        );
    }
}
