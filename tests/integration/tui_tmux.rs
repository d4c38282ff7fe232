//! End to end: the real binary in tmux, as a user sees it. The README's tutorial keystroke
//! by keystroke; and part of the shipped sentiment set on SmolLM2, opened from the history,
//! down to a failing case side by side.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{SMOLLM2, TempProject, copy_dir, promptlab, real_model};

struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("promptlab-test-{name}-{}", std::process::id()),
            session: "tui",
        };
        let status = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                tmux.session,
                "-x",
                "120",
                "-y",
                "40",
            ])
            .arg(command)
            .status()
            .expect("tmux must be installed (scripts/install-prereqs.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let output = self
            .cmd()
            .args(["capture-pane", "-p", "-t", self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows `text`, returning the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_up_to(text, Duration::from_secs(20))
    }

    /// Waits until the screen shows `text` (or `limit` passes), returning the screen.
    fn wait_up_to(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// Waits (up to 10 s) until the program in the session has exited.
    fn wait_until_closed(&self, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .cmd()
            .args(["has-session", "-t", self.session])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "{why}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn tui_opens_a_failing_case_side_by_side() {
    let project = TempProject::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("prompts"), &project.root().join("prompts"));
    copy_dir(&repo.join("eval-sets"), &project.root().join("eval-sets"));
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: 2048\n",
            real_model(SMOLLM2).display()
        ),
    );
    let eval = promptlab(
        &["eval", "eval-sets/sentiment.yaml", "--limit", "8", "-q"],
        project.root(),
    );
    assert!(
        matches!(eval.status.code(), Some(0 | 1)),
        "eval failed: {}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let log = project.root().join("tui.log");
    let tmux = Tmux::start(
        "sentiment",
        &format!(
            "PROMPTLAB_LOG_FILE={} {} tui {}",
            log.display(),
            env!("CARGO_BIN_EXE_promptlab"),
            project.root().display()
        ),
    );
    tmux.wait_for("1 Library");
    tmux.wait_for("sentiment (45 cases)");

    tmux.keys(&["7"]);
    tmux.wait_for("16/16");
    tmux.keys(&["Enter"]);
    let results = tmux.wait_for("Run 1 · sentiment · finished");
    assert!(
        results.contains("sentiment:few-shot @ smollm2"),
        "{results}"
    );
    assert!(results.contains("pass rate"), "{results}");

    // Jump to the next case with a failure and compare its columns.
    tmux.keys(&["n", "Enter"]);
    let side = tmux.wait_for("Side by side ·");
    assert!(
        side.contains("✗ fail"),
        "a failing case shows a failed cell:\n{side}"
    );
    assert!(
        side.contains("json-path"),
        "assertion results are listed:\n{side}"
    );
    assert!(side.contains("case r0"), "{side}");

    tmux.keys(&["q"]);
    tmux.wait_until_closed("q did not quit the TUI");
}

/// The README's 5-minute tutorial, as written: `init`, a labelled `eval`, the workbench,
/// an edit saved with Ctrl-S, a run from the library, a re-run from the cache, and the
/// comparison in the history; then `runs compare` and the HTML report.
#[test]
fn the_readme_tutorial_works_keystroke_by_keystroke() {
    let parent = TempProject::new();
    let model = real_model(SMOLLM2);
    let init = promptlab(
        &["init", "capitals-demo", "--model", &model.to_string_lossy()],
        parent.root(),
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let project = parent.root().join("capitals-demo");
    assert!(String::from_utf8_lossy(&init.stdout).contains("promptlab eval capitals"));

    // Step 1.
    let eval = promptlab(&["eval", "capitals", "--label", "first wording"], &project);
    assert!(
        matches!(eval.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(String::from_utf8_lossy(&eval.stdout).contains("run 1"));

    // Step 2: `promptlab` inside the project opens the workbench.
    let tmux = Tmux::start(
        "tutorial",
        &format!(
            "cd {} && PROMPTLAB_LOG_FILE={} {}",
            project.display(),
            project.join("tui.log").display(),
            env!("CARGO_BIN_EXE_promptlab")
        ),
    );
    let library = tmux.wait_for("1 Library");
    assert!(library.contains("capital"), "{library}");
    tmux.keys(&["?"]);
    tmux.wait_for("switch screen");
    tmux.keys(&["Escape"]);
    tmux.wait_for("Enter open");

    // Step 3: open `capital`, type at the end of its `content:` line, save.
    tmux.keys(&["Enter"]);
    tmux.wait_for("Preview");
    tmux.keys(&["i"]);
    tmux.wait_for("TYPING");
    let text = std::fs::read_to_string(project.join("prompts/capital.yaml")).unwrap();
    let content_line = text
        .lines()
        .position(|l| l.trim_start().starts_with("content:"))
        .expect("the prompt has a content line");
    for _ in 0..content_line {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["End", "Left"]);
    tmux.keys(&["-l", " Answer with the city's name only."]);
    tmux.wait_for("[modified]");
    tmux.keys(&["C-s"]);
    let saved = tmux.wait_for("saved prompts/capital.yaml");
    assert!(!saved.contains("TYPING"), "Ctrl-S stops typing:\n{saved}");
    let text = std::fs::read_to_string(project.join("prompts/capital.yaml")).unwrap();
    assert!(
        text.contains("{{ country }}? Answer with the city's name only.\""),
        "{text}"
    );
    assert!(
        saved.contains("content:"),
        "the lines show from their start:\n{saved}"
    );

    // Step 4: `1`, the eval set, Enter, r; the finished run opens in the results.
    tmux.keys(&["1", "Down", "Enter"]);
    let run = tmux.wait_for("[x] capital");
    assert!(run.contains("[x] smollm2"), "{run}");
    tmux.keys(&["r"]);
    let results = tmux.wait_up_to("Run 2 · capitals · finished", Duration::from_secs(180));
    assert!(
        results.contains("France"),
        "cases show their text:\n{results}"
    );

    // Step 5: `3`, r: every cell from the cache.
    tmux.keys(&["3", "r"]);
    tmux.wait_up_to("Run 3 · capitals · finished", Duration::from_secs(60));

    // Step 6: the history, the run after the edit, c.
    tmux.keys(&["7"]);
    let history = tmux.wait_for("first wording");
    assert!(
        history.contains("10c"),
        "run 3 came from the cache:\n{history}"
    );
    tmux.keys(&["Down", "c"]);
    let compared = tmux.wait_for("Run 1 → run 2");
    assert!(compared.contains("capital @ smollm2"), "{compared}");
    assert!(compared.contains("outputs changed"), "{compared}");
    assert!(
        compared.contains("· 3 Italy:") || compared.contains("· 1 France:"),
        "changed cases are named by their text:\n{compared}"
    );
    tmux.keys(&["q"]);
    tmux.wait_until_closed("q did not quit the TUI");

    // Step 7.
    let compare = promptlab(&["runs", "compare", "1", "2"], &project);
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stderr)
    );
    assert!(String::from_utf8_lossy(&compare.stdout).contains("capital @ smollm2"));
    let report = promptlab(&["report", "latest", "-o", "report.html"], &project);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let page = std::fs::read_to_string(project.join("report.html")).unwrap();
    assert!(page.contains("France"));
}
