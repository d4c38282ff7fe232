//! Word-level diffs of two outputs: the parts each side has alone, for highlighting in the
//! TUI and the side-by-side view, and a one-line form with git's `--word-diff` markers for
//! the command line, where a long unchanged stretch is cut down to its edges.

use serde::Serialize;

/// How a word of one output relates to another output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WordChange {
    Same,
    /// Only in the left text.
    Removed,
    /// Only in the right text.
    Added,
}

/// A word-level diff of two outputs (whitespace kept with the words), for highlighting.
/// Within a stretch of changes, the spaces both sides share are taken into the change, so
/// a rewritten sentence reads as the old words then the new ones, not interleaved word by
/// word around each shared space.
pub fn word_diff(left: &str, right: &str) -> Vec<(WordChange, String)> {
    use similar::ChangeTag;
    let diff = similar::TextDiff::from_words(left, right);
    let changes: Vec<(ChangeTag, &str)> = diff
        .iter_all_changes()
        .map(|c| (c.tag(), c.value()))
        .collect();
    let mut parts: Vec<(WordChange, String)> = Vec::new();
    let mut push = |kind: WordChange, text: &str| {
        if text.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some((last, existing)) if *last == kind => existing.push_str(text),
            _ => parts.push((kind, text.to_string())),
        }
    };
    let mut i = 0;
    while i < changes.len() {
        if changes[i].0 == ChangeTag::Equal {
            push(WordChange::Same, changes[i].1);
            i += 1;
            continue;
        }
        let (mut removed, mut added, mut spaces) = (String::new(), String::new(), String::new());
        while let Some(&(tag, value)) = changes.get(i) {
            match tag {
                ChangeTag::Equal if value.trim().is_empty() => spaces.push_str(value),
                ChangeTag::Equal => break,
                ChangeTag::Delete | ChangeTag::Insert => {
                    removed.push_str(&spaces);
                    added.push_str(&spaces);
                    spaces.clear();
                    if tag == ChangeTag::Delete {
                        removed.push_str(value);
                    } else {
                        added.push_str(value);
                    }
                }
            }
            i += 1;
        }
        push(WordChange::Removed, &removed);
        push(WordChange::Added, &added);
        push(WordChange::Same, &spaces);
    }
    parts
}

/// Words of unchanged text kept on each side of a change in [`compact_diff`].
const CONTEXT_WORDS: usize = 4;

/// The word diff for one line of a terminal: whitespace runs (newlines included) become
/// one space, and an unchanged stretch longer than a few words is cut to its edges with
/// "…", so what changed stays in view however long the outputs are.
pub fn compact_diff(left: &str, right: &str) -> Vec<(WordChange, String)> {
    let parts = word_diff(left, right);
    let last = parts.len().saturating_sub(1);
    let mut out: Vec<(WordChange, String)> = Vec::new();
    for (index, (kind, text)) in parts.iter().enumerate() {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        if *kind == WordChange::Same {
            let keep_head = if index > 0 { CONTEXT_WORDS } else { 0 };
            let keep_tail = if index < last { CONTEXT_WORDS } else { 0 };
            // Text with no change at all is shown whole.
            if keep_head + keep_tail > 0 && words.len() > keep_head + keep_tail + 1 {
                let tail = words.split_off(words.len() - keep_tail);
                words.truncate(keep_head);
                words.push("…");
                words.extend(tail);
            }
        }
        let mut piece = String::new();
        if text.starts_with(char::is_whitespace) && index > 0 {
            piece.push(' ');
        }
        piece.push_str(&words.join(" "));
        if text.ends_with(char::is_whitespace) && index < last && !words.is_empty() {
            piece.push(' ');
        }
        if piece.is_empty() {
            continue;
        }
        // A change of whitespace alone shows as the space it is.
        let kind = if words.is_empty() {
            WordChange::Same
        } else {
            *kind
        };
        match out.last_mut() {
            Some((last_kind, last_text)) if *last_kind == kind => {
                if !(last_text.ends_with(' ') && piece.starts_with(' ')) {
                    last_text.push_str(&piece);
                } else {
                    last_text.push_str(&piece[1..]);
                }
            }
            _ => out.push((kind, piece)),
        }
    }
    out
}

/// The diff on one line, `[-removed-]{+added+}` as `git diff --word-diff` writes it (see
/// [`compact_diff`]); spaces next to a change are kept outside its markers.
pub fn inline_diff(left: &str, right: &str) -> String {
    let mut out = String::new();
    for (kind, text) in compact_diff(left, right) {
        let (open, close) = match kind {
            WordChange::Same => {
                if out.ends_with(' ') && text.starts_with(' ') {
                    out.push_str(&text[1..]);
                } else {
                    out.push_str(&text);
                }
                continue;
            }
            WordChange::Removed => ("[-", "-]"),
            WordChange::Added => ("{+", "+}"),
        };
        let words = text.trim();
        if text.starts_with(' ') && !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(open);
        out.push_str(words);
        out.push_str(close);
        if text.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_diff_marks_changed_words() {
        let parts = word_diff("the cat sat", "the dog sat");
        assert_eq!(
            parts,
            [
                (WordChange::Same, "the ".to_string()),
                (WordChange::Removed, "cat".to_string()),
                (WordChange::Added, "dog".to_string()),
                (WordChange::Same, " sat".to_string()),
            ]
        );
        assert_eq!(
            word_diff("same", "same"),
            [(WordChange::Same, "same".into())]
        );
    }

    /// Issue 21: a prompt edit turned "Rio de Janeiro" into "Rio".
    #[test]
    fn inline_diff_shows_what_changed_in_git_word_diff_markers() {
        assert_eq!(
            inline_diff("The capital is Rio de Janeiro.", "The capital is Rio."),
            "The capital is [-Rio de Janeiro.-]{+Rio.+}"
        );
        assert_eq!(inline_diff("Rio de Janeiro", "Rio"), "Rio [-de Janeiro-]");
        assert_eq!(inline_diff("a\n\nb", "a\n\nb"), "a b");
    }

    #[test]
    fn inline_diff_cuts_long_unchanged_stretches_to_their_edges() {
        let words: Vec<String> = (1..=30).map(|i| format!("w{i}")).collect();
        let before = format!("{} old {}", words[..15].join(" "), words[15..].join(" "));
        let after = format!("{} new {}", words[..15].join(" "), words[15..].join(" "));
        assert_eq!(
            inline_diff(&before, &after),
            "… w12 w13 w14 w15 [-old-]{+new+} w16 w17 w18 w19 …"
        );
    }
}
