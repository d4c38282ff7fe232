//! The CLI's tables as a terminal shows them: `--color`, NO_COLOR, and fitting the width
//! (COLUMNS stands in for the terminal here, whose output is a pipe).

use std::process::{Command, Output};

use crate::common::TempProject;

const ESCAPE: &str = "\u{1b}[";

/// A project whose eval set runs on the echo engine: one case passes, one fails, and the
/// prompt has a long name that fits a wide terminal's header only.
fn project() -> TempProject {
    let project = TempProject::new();
    project.write("models/models.yaml", "models: {}\n");
    project.write(
        "prompts/a-prompt-with-a-rather-long-descriptive-name.yaml",
        "messages:\n  - role: user\n    content: \"Say {{ word }}\"\n",
    );
    project.write(
        "eval-sets/words.yaml",
        "prompts: [a-prompt-with-a-rather-long-descriptive-name]\nmodels: [echo]\ncases:\n  - vars: {word: hello}\n    assert: [{type: contains, value: hello}]\n  - vars: {word: bye}\n    assert: [{type: contains, value: hello}]\n",
    );
    project
}

fn eval(project: &TempProject, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promptlab"));
    command
        .args(["eval", "eval-sets/words.yaml", "--no-store"])
        .args(extra)
        .current_dir(project.root())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run promptlab")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn verdicts_are_coloured_only_when_asked_or_on_a_terminal() {
    let project = project();
    // A pipe gets plain text, whatever NO_COLOR says.
    let plain = eval(&project, &[], &[]);
    assert_eq!(plain.status.code(), Some(1), "{}", stdout(&plain));
    assert!(!stdout(&plain).contains(ESCAPE), "{}", stdout(&plain));
    assert!(stdout(&plain).contains("✓ 1.00") && stdout(&plain).contains("✗ 0.00"));

    // --color always colours the verdicts, green and red, even under NO_COLOR: the flag
    // is the more explicit of the two.
    let escapes = regex::Regex::new("\u{1b}\\[[0-9;]*m").unwrap();
    for env in [&[][..], &[("NO_COLOR", "1")][..]] {
        let coloured = eval(&project, env, &["--color", "always"]);
        let text = stdout(&coloured);
        assert!(
            text.contains("\u{1b}[38;5;10m") || text.contains("\u{1b}[32m"),
            "{text:?}"
        );
        assert!(
            text.contains("\u{1b}[38;5;9m") || text.contains("\u{1b}[31m"),
            "{text:?}"
        );
        // Only the styling differs.
        let stripped = escapes.replace_all(&text, "");
        let summary_of = |t: &str| t.lines().filter(|l| l.contains("│")).count();
        assert_eq!(summary_of(&stripped), summary_of(&stdout(&plain)));
    }
    let never = eval(&project, &[], &["--color", "never"]);
    assert!(!stdout(&never).contains(ESCAPE));

    let bad = eval(&project, &[], &["--color", "sometimes"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("always"));
}

#[test]
fn tables_fit_the_terminal_width_and_name_columns_when_they_fit() {
    let project = project();
    let column = "a-prompt-with-a-rather-long-descriptive-name @ echo";
    // Without a width (a pipe), the matrix names its column C1, as wide as it likes.
    let piped = stdout(&eval(&project, &[], &[]));
    let header = piped.lines().nth(1).unwrap();
    assert!(header.contains("C1") && !header.contains(column), "{piped}");

    // A wide terminal has room for the name.
    let wide = stdout(&eval(&project, &[("COLUMNS", "160")], &[]));
    assert!(wide.lines().nth(1).unwrap().contains(column), "{wide}");

    // A narrow one: the summary's name wraps, its figures stay whole, and no line of
    // either table is wider than the terminal.
    let narrow = stdout(&eval(&project, &[("COLUMNS", "88")], &[]));
    let table_lines: Vec<&str> = narrow
        .lines()
        .filter(|l| l.starts_with(['┌', '│', '╞', '└']))
        .collect();
    assert!(table_lines.len() > 6, "{narrow}");
    for line in &table_lines {
        assert!(
            line.chars().count() <= 88,
            "{} chars: {line}\n{narrow}",
            line.chars().count()
        );
    }
    assert!(narrow.contains("1/2"), "{narrow}");
    assert!(narrow.contains("50.0% [9.5–90.5]"), "{narrow}");
    assert!(
        table_lines.iter().all(|l| !l.contains(column)),
        "the name should wrap: {narrow}"
    );
}

/// `runs list` fits an 80-column terminal: no borders, the label under the eval set, the
/// rate without its interval; a wide terminal keeps the full table.
#[test]
fn runs_list_fits_eighty_columns() {
    let project = project();
    let run = |args: &[&str], columns: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
            .args(args)
            .current_dir(project.root())
            .env_remove("NO_COLOR")
            .env("COLUMNS", columns)
            .output()
            .expect("run promptlab");
        stdout(&out)
    };
    run(
        &[
            "eval",
            "eval-sets/words.yaml",
            "-q",
            "--label",
            "the first try at it",
        ],
        "80",
    );
    run(&["eval", "eval-sets/words.yaml", "-q"], "80");
    let narrow = run(&["runs", "list"], "80");
    for line in narrow.lines() {
        assert!(line.chars().count() <= 80, "{line}\n{narrow}");
    }
    assert!(narrow.contains("“the first"), "{narrow}");
    assert!(
        narrow.contains("50%") && narrow.contains("2 cached"),
        "{narrow}"
    );
    assert_eq!(
        narrow.lines().filter(|l| l.contains("words")).count(),
        2,
        "{narrow}"
    );

    let wide = run(&["runs", "list"], "200");
    assert!(wide.contains("50.0% [9.5–90.5]"), "{wide}");
    assert!(wide.contains("2/2 (2 cached)"), "{wide}");
    assert!(wide.lines().all(|l| l.chars().count() <= 200), "{wide}");
}
