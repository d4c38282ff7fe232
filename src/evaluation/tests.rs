//! Starting evaluations through the one entry point, with the echo engine.

use super::*;
use crate::run::CellResult;

/// Two echo prompts over 5 cases, and an agent set.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
        std::fs::write(path, text).expect("written");
    };
    write("prompts/a.yaml", "name: a\ncompletion: 'A {{ x }}'\n");
    write("prompts/b.yaml", "name: b\ncompletion: 'B {{ x }}'\n");
    let mut cases = String::from("prompts: [a, b]\nmodels: [echo]\ncases:\n");
    for i in 0..5 {
        cases.push_str(&format!(
            "  - vars: {{x: '{i}'}}\n    assert: [{{type: contains, value: '{i}'}}]\n"
        ));
    }
    write("eval-sets/s.yaml", &cases);
    write(
        "eval-sets/agent.yaml",
        "kind: agent\nname: a\nmodels: [echo]\ncases:\n  - question: How many?\n    checks: [{type: answer-contains, value: '3'}]\n",
    );
    dir
}

fn request(dir: &tempfile::TempDir, set: &str) -> Request {
    Request {
        eval_set: dir.path().join("eval-sets").join(set),
        project: Some(dir.path().to_path_buf()),
        store: StoreChoice::At(dir.path().join("runs.db")),
        use_cache: true,
        ..Request::default()
    }
}

/// Records what an observer hears.
#[derive(Default)]
struct Heard {
    started: Vec<usize>,
    finished: Vec<usize>,
}

impl RunObserver for Heard {
    fn cell_started(&mut self, cell: usize) {
        self.started.push(cell);
    }
    fn cell_finished(&mut self, cell: usize, _result: &CellResult) {
        self.finished.push(cell);
    }
}

#[test]
fn a_prompt_set_runs_records_and_resumes_through_one_entry_point() {
    let dir = project();
    let mut first = Evaluation::prepare(request(&dir, "s.yaml")).expect("prepared");
    assert!(!first.is_agent());
    assert_eq!(first.cell_count(), 10);
    assert_eq!(
        first.cell_labels()[6],
        ("b @ echo".to_string(), "2".to_string())
    );
    // The run has its id once begun, and only once.
    let run_id = first.begin().expect("begun").expect("recorded");
    assert_eq!(first.begin().expect("again"), Some(run_id));
    // Interrupted before its first cell (the echo engine answers too fast to stop
    // midway; tests/integration/resume.rs interrupts real models mid-run).
    let cancel = CancelToken::new();
    cancel.cancel();
    let mut heard = Heard::default();
    let interrupted = first
        .execute(&ExecuteOptions::default(), &mut heard, &cancel)
        .expect("ran");
    assert!(interrupted.result.cancelled);
    assert_eq!(interrupted.run_id, Some(run_id));
    let kept = interrupted.result.cells.len();
    assert!(kept < 10, "{kept}");

    let resume = Request {
        resume: Some(ResumeFrom::Latest),
        ..request(&dir, "s.yaml")
    };
    let mut second = Evaluation::prepare(resume).expect("prepared");
    assert_eq!(second.resumed(), Some(run_id));
    let mut heard = Heard::default();
    let done = second
        .execute(&ExecuteOptions::default(), &mut heard, &CancelToken::new())
        .expect("ran");
    assert_eq!(done.run_id, Some(run_id));
    assert!(!done.result.cancelled);
    assert_eq!(done.result.cells.len(), 10);
    assert!(done.result.cells.iter().all(|c| c.passed));
    // The kept cells were read back, not started again.
    assert_eq!(heard.finished.len(), 10);
    assert_eq!(heard.started.len(), 10 - kept);
}

#[test]
fn refusals_come_before_anything_runs() {
    let dir = project();
    let no_store = Request {
        store: StoreChoice::Off,
        resume: Some(ResumeFrom::Latest),
        ..request(&dir, "s.yaml")
    };
    assert!(matches!(
        Evaluation::prepare(no_store),
        Err(EvaluationError::ResumeWithoutStore { .. })
    ));
    let judged_agent = Request {
        judge: Some("echo".into()),
        ..request(&dir, "agent.yaml")
    };
    let refused = Evaluation::prepare(judged_agent).err().expect("refused");
    assert!(
        refused
            .to_string()
            .contains("--judge does not apply to an agent eval set"),
        "{refused}"
    );
    assert!(!dir.path().join("runs.db").exists());
}
