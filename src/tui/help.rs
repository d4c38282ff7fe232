//! The key map: one table that the help overlay shows and the guide's TUI page copies.

pub struct Binding {
    pub screen: &'static str,
    pub keys: &'static str,
    pub action: &'static str,
    /// A word or two for the screen's key bar; empty keeps the binding out of it.
    pub short: &'static str,
}

const fn bind(screen: &'static str, keys: &'static str, action: &'static str) -> Binding {
    bar(screen, keys, action, "")
}

/// A binding the screen's key bar shows, as `keys short`.
const fn bar(
    screen: &'static str,
    keys: &'static str,
    action: &'static str,
    short: &'static str,
) -> Binding {
    Binding {
        screen,
        keys,
        action,
        short,
    }
}

/// The key bar of `screen` (its title): its main keys, in the key map's order.
pub fn key_bar(screen: &str) -> String {
    KEYMAP
        .iter()
        .filter(|b| b.screen == screen && !b.short.is_empty())
        .map(|b| format!("{} {}", b.keys, b.short))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub const KEYMAP: &[Binding] = &[
    bind("all", "1 … 9 0", "switch screen (or click its tab)"),
    bind("all", "?", "this help (↑ ↓ PgUp PgDn Home End scroll it)"),
    bind("all", "q", "quit (asks first while a run is active)"),
    bind(
        "all",
        "Ctrl-C",
        "cancel the running job (the app stays open)",
    ),
    bind(
        "all",
        "↑ ↓ j k PgUp PgDn",
        "move; the mouse wheel scrolls, a click selects",
    ),
    bind(
        "all",
        "/  n  N",
        "search the list (Library, Results, History) / next / previous match (on Results `/` Enter: next)",
    ),
    bar(
        "Library",
        "Enter",
        "prompt: open in the editor · eval set: set up a run",
        "open",
    ),
    bar("Library", "e", "edit the prompt file in $EDITOR", "$EDITOR"),
    bar("Library", "r", "read the project again", "reload"),
    bar("Editor", "i / Enter", "start typing (Esc stops)", "type"),
    bar("Editor", "s / Ctrl-S", "save the file", "save"),
    bind("Editor", "e", "edit in $EDITOR"),
    bar(
        "Editor",
        "c / C",
        "preview the next / previous case",
        "case",
    ),
    bar(
        "Editor",
        "t  v  m",
        "preview with the next eval set / variant / model",
        "set, variant, model",
    ),
    bar("Run", "Tab", "next list: eval set, prompts, models", "list"),
    bar("Run", "Space", "tick a prompt or model", "tick"),
    bar(
        "Run",
        "r / Enter",
        "start (Enter on a finished run opens its results)",
        "start",
    ),
    bar(
        "Run",
        "c",
        "cancel the run (finished cells are kept)",
        "cancel",
    ),
    bar(
        "Results",
        "f",
        "filter: all, failures, disagreements, each tag",
        "filter",
    ),
    bar(
        "Results",
        "s",
        "sort: case order, lowest score, slowest",
        "sort",
    ),
    bind("Results", "← →", "scroll the columns"),
    bar("Results", "n", "next case with a failure", "next failure"),
    bar(
        "Results",
        "p",
        "the pairwise ranking of the columns (after `eval --pairwise`)",
        "ranking",
    ),
    bar(
        "Results",
        "Enter",
        "side by side for the case",
        "side by side",
    ),
    bar("Side by side", "← → / j k", "previous / next case", "case"),
    bar("Side by side", "n", "next failing case", "next failure"),
    bar("Side by side", "d", "diff another pair of columns", "diff"),
    bar(
        "Side by side",
        "p",
        "the prompts each column sent (differences highlighted) / the outputs",
        "prompts",
    ),
    bind("Side by side", "PgDn PgUp", "scroll the panes"),
    bind(
        "Side by side",
        "Tab",
        "shift the columns shown (4 at a time)",
    ),
    bar("Side by side", "Esc", "back to the results", "back"),
    bar(
        "Playground",
        "i / Enter",
        "type a message (Enter sends, Esc stops typing)",
        "type",
    ),
    bar(
        "Playground",
        "m  p",
        "next model / next prompt framing the chat",
        "model, prompt",
    ),
    bind(
        "Playground",
        "Tab ↑↓ ←→",
        "move to the parameters (and gpu_layers) and adjust one",
    ),
    bar(
        "Playground",
        "c  n",
        "cancel the reply / start a new conversation",
        "cancel, new",
    ),
    bar(
        "Playground",
        "S  t",
        "save the exchange as a case / choose the eval set",
        "save as case",
    ),
    bar("History", "Enter", "open the run in the results", "open"),
    bar(
        "History",
        "Space",
        "mark a run (two marked are compared)",
        "mark",
    ),
    bar(
        "History",
        "c",
        "compare: the two marked, or the last other config",
        "compare",
    ),
    bar(
        "History",
        "R",
        "resume a run that stopped early (on the run screen)",
        "resume",
    ),
    bar(
        "History",
        "l",
        "label the run (Enter saves, Esc cancels, empty clears)",
        "label",
    ),
    bind(
        "History",
        "r / Esc",
        "reload the list / close the comparison",
    ),
    bar(
        "Charts",
        "t",
        "the digit CNN's training runs (loss and accuracy per epoch) / the open run's charts",
        "training runs",
    ),
    bar(
        "Agent",
        "i / Enter",
        "type a question (Enter asks, Esc stops typing)",
        "ask",
    ),
    bind("Agent", "↑ ↓", "earlier questions, from the run store"),
    bar(
        "Agent",
        "← →",
        "step through the trace (the step opens in full)",
        "steps",
    ),
    bar(
        "Agent",
        "m  c  r",
        "next model / cancel / reload the questions",
        "model, cancel, reload",
    ),
    bind(
        "Optimize",
        "↑ ↓",
        "the candidates, as a lineage tree (each under the one it was made from)",
    ),
    bar(
        "Optimize",
        "← →",
        "the previous / next optimization in the run store",
        "other",
    ),
    bar(
        "Optimize",
        "Enter",
        "open the candidate's tuning run in the results",
        "its run",
    ),
    bar(
        "Optimize",
        "h",
        "open the held-out run (baseline and finalists)",
        "held out",
    ),
    bar(
        "Optimize",
        "a",
        "write the candidate into its prompt file as the variant optID-N",
        "accept",
    ),
    bind("Optimize", "r", "read the store again"),
];

/// The keys as a Markdown table, for the guide's TUI page.
#[cfg(test)]
fn markdown_table() -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut table = String::from("| screen | keys | action |\n|---|---|---|\n");
    for binding in KEYMAP {
        table.push_str(&format!(
            "| {} | `{}` | {} |\n",
            cell(binding.screen),
            cell(binding.keys),
            cell(binding.action)
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    const START: &str = "<!-- keys-table:start: generated from src/tui/help.rs by \
                         `UPDATE_DOCS=1 cargo test --bin promptlab keys_page_shows_the_keymap` -->\n";
    const END: &str = "<!-- keys-table:end -->\n";

    /// The guide lists every binding the help overlay shows, from the same table;
    /// `UPDATE_DOCS=1` rewrites it.
    #[test]
    fn keys_page_shows_the_keymap() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/tui.md");
        let page = std::fs::read_to_string(path).expect("docs/src/tui.md is readable");
        let (Some(start), Some(end)) = (page.find(START), page.find(END)) else {
            panic!("docs/src/tui.md lacks the lines {START:?} and {END:?} around the keys table");
        };
        let wanted = format!("{START}\n{}\n", super::markdown_table());
        if page[start..end] == wanted {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let mut updated = page.clone();
            updated.replace_range(start..end, &wanted);
            std::fs::write(path, updated).expect("docs/src/tui.md is writable");
            return;
        }
        panic!(
            "docs/src/tui.md's keys table is not src/tui/help.rs's KEYMAP; regenerate it with \
             `UPDATE_DOCS=1 cargo test --locked --features mistralrs --bin promptlab keys_page_shows_the_keymap`"
        );
    }
}
