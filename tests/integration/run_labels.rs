//! Naming runs: `eval --label`, `runs label`, and where the names show (`runs list`,
//! `runs show`); sweeps name their runs after their settings.

use crate::common::{TempProject, promptlab, text};

fn project() -> TempProject {
    let project = TempProject::new();
    project.write("models/models.yaml", "models: {}\n");
    project.write(
        "prompts/say.yaml",
        "messages:\n  - role: user\n    content: \"Say {{ word }}\"\n",
    );
    project.write(
        "eval-sets/words.yaml",
        "prompts: [say]\nmodels: [echo]\ncases:\n  - vars: {word: hello}\n    assert: [{type: contains, value: hello}]\n",
    );
    project
}

#[test]
fn runs_are_labelled_when_run_and_relabelled_later() {
    let project = project();
    let root = project.root();
    let out = promptlab(&["eval", "words", "--label", "baseline"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = promptlab(&["eval", "words", "--no-cache"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let list = text(&promptlab(&["runs", "list"], root));
    let row = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("│ {id} ")))
            .unwrap_or_else(|| panic!("no row for run {id}: {list}"))
            .to_string()
    };
    assert!(row("1").contains("baseline"), "{list}");
    assert!(!row("2").contains("baseline"), "{list}");

    let out = promptlab(&["runs", "label", "latest", "no cache"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("run 2 is now labelled \"no cache\""));
    let show = text(&promptlab(&["runs", "show", "2"], root));
    assert!(show.starts_with("run 2 \"no cache\" · words"), "{show}");

    // No text clears the label; an unknown run is an input error.
    let out = promptlab(&["runs", "label", "latest~1"], root);
    assert!(
        text(&out).contains("run 1 has no label now"),
        "{}",
        text(&out)
    );
    let list = text(&promptlab(&["runs", "list"], root));
    assert!(!list.contains("baseline"), "{list}");
    let out = promptlab(&["runs", "label", "9", "x"], root);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no run 9"), "{}", text(&out));

    // A run that is not stored cannot be named.
    let out = promptlab(&["eval", "words", "--no-store", "--label", "x"], root);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
