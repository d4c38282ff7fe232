//! End to end: the real binary in tmux, as a user sees it. Evaluate part of the shipped
//! sentiment set on SmolLM2, open the TUI, open that run from the history, jump to a
//! failing case and open its side-by-side view, then check the captured screen.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{SMOLLM2, TempProject, copy_dir, promptlab, real_model};

struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("promptlab-test-{}", std::process::id()),
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
        let deadline = Instant::now() + Duration::from_secs(20);
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
    let tmux = Tmux::start(&format!(
        "PROMPTLAB_LOG_FILE={} {} tui {}",
        log.display(),
        env!("CARGO_BIN_EXE_promptlab"),
        project.root().display()
    ));
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux
        .cmd()
        .args(["has-session", "-t", tmux.session])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "q did not quit the TUI");
        std::thread::sleep(Duration::from_millis(100));
    }
}
