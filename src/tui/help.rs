//! The key map: one table that the help overlay shows and the guide's TUI page copies.

pub struct Binding {
    pub screen: &'static str,
    pub keys: &'static str,
    pub action: &'static str,
}

const fn bind(screen: &'static str, keys: &'static str, action: &'static str) -> Binding {
    Binding {
        screen,
        keys,
        action,
    }
}

pub const KEYMAP: &[Binding] = &[
    bind("all", "1 … 9", "switch screen (or click its tab)"),
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
    bind(
        "Library",
        "Enter",
        "prompt: open in the editor · eval set: set up a run",
    ),
    bind("Library", "e", "edit the prompt file in $EDITOR"),
    bind("Library", "r", "read the project again"),
    bind("Editor", "i / Enter", "start typing (Esc stops)"),
    bind("Editor", "s / Ctrl-S", "save the file"),
    bind("Editor", "e", "edit in $EDITOR"),
    bind("Editor", "c / C", "preview the next / previous case"),
    bind(
        "Editor",
        "t  v  m",
        "preview with the next eval set / variant / model",
    ),
    bind("Run", "Tab", "next list: eval set, prompts, models"),
    bind("Run", "Space", "tick a prompt or model"),
    bind(
        "Run",
        "r / Enter",
        "start (Enter on a finished run opens its results)",
    ),
    bind("Run", "c", "cancel the run (finished cells are kept)"),
    bind(
        "Results",
        "f",
        "filter: all, failures, disagreements, each tag",
    ),
    bind("Results", "s", "sort: case order, lowest score, slowest"),
    bind("Results", "← →", "scroll the columns"),
    bind("Results", "n", "next case with a failure"),
    bind("Results", "Enter", "side by side for the case"),
    bind("Side by side", "← → / j k", "previous / next case"),
    bind("Side by side", "n", "next failing case"),
    bind("Side by side", "d", "diff another pair of columns"),
    bind(
        "Side by side",
        "p",
        "the prompts each column sent (differences highlighted) / the outputs",
    ),
    bind("Side by side", "PgDn PgUp", "scroll the panes"),
    bind(
        "Side by side",
        "Tab",
        "shift the columns shown (4 at a time)",
    ),
    bind("Side by side", "Esc", "back to the results"),
    bind(
        "Playground",
        "i / Enter",
        "type a message (Enter sends, Esc stops typing)",
    ),
    bind(
        "Playground",
        "m  p",
        "next model / next prompt framing the chat",
    ),
    bind(
        "Playground",
        "Tab ↑↓ ←→",
        "move to the parameters and adjust one",
    ),
    bind(
        "Playground",
        "c  n",
        "cancel the reply / start a new conversation",
    ),
    bind(
        "Playground",
        "S  t",
        "save the exchange as a case / choose the eval set",
    ),
    bind("History", "Enter", "open the run in the results"),
    bind("History", "Space", "mark a run (two marked are compared)"),
    bind(
        "History",
        "c",
        "compare: the two marked, or the last other config",
    ),
    bind(
        "History",
        "R",
        "resume a run that stopped early (on the run screen)",
    ),
    bind(
        "History",
        "l",
        "label the run (Enter saves, Esc cancels, empty clears)",
    ),
    bind(
        "History",
        "r / Esc",
        "reload the list / close the comparison",
    ),
    bind(
        "Agent",
        "i / Enter",
        "type a question (Enter asks, Esc stops typing)",
    ),
    bind("Agent", "↑ ↓", "earlier questions, from the run store"),
    bind(
        "Agent",
        "← →",
        "step through the trace (the step opens in full)",
    ),
    bind(
        "Agent",
        "m  c  r",
        "next model / cancel / reload the questions",
    ),
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
