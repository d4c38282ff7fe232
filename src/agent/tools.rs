//! The tools an agent can call. Each is one type implementing [`Tool`]: a name, a
//! description and a JSON Schema for its arguments (which become the grammar the model's
//! calls are generated under), and a call returning JSON. Tools only read files under the
//! allowed roots ([`ToolContext::resolve`]); a failure is an error message for the model,
//! never a crash of the agent.

mod calculator;
mod files;
mod vision;

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

pub use calculator::{CalcLimits, Calculator};
pub use files::ListImages;
pub use vision::{ClassifyDigit, ClassifyImage, DetectObjects};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error("{0}")]
    Path(String),
    #[error("{0}")]
    Failed(String),
    #[error("no tool named `{0}`")]
    Unknown(String),
    #[error("the tool took longer than {0:?} and was abandoned")]
    TimedOut(Duration),
}

pub trait Tool: Send {
    fn name(&self) -> &'static str;
    /// One or two sentences the model reads to decide when to call it.
    fn description(&self) -> String;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    fn call(&mut self, args: &Value, context: &ToolContext) -> Result<Value, ToolError>;
}

/// What tools may touch: files under `roots`; relative paths are taken from `base`.
#[derive(Debug, Clone)]
pub struct ToolContext {
    roots: Vec<PathBuf>,
    base: PathBuf,
}

impl ToolContext {
    /// Roots that do not exist are dropped (nothing can be read under them anyway).
    pub fn new(roots: Vec<PathBuf>, base: PathBuf) -> ToolContext {
        let roots = roots
            .into_iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect();
        ToolContext { roots, base }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The real path of `path` if it exists under an allowed root. `..` is refused
    /// outright, and symlinks are followed before the check, so a link pointing out of
    /// the project is refused too.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        let given = Path::new(path.trim());
        if path.trim().is_empty() {
            return Err(ToolError::Arguments("the path is empty".into()));
        }
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(ToolError::Path(format!(
                "refused `{path}`: paths may not contain `..`"
            )));
        }
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            std::fs::canonicalize(&self.base)
                .unwrap_or_else(|_| self.base.clone())
                .join(given)
        };
        let outside = || {
            ToolError::Path(format!(
                "refused `{path}`: it is outside the folders this agent may read"
            ))
        };
        // Checked before the file system is touched: a path outside the roots gets the
        // same answer whether or not it exists, so a model cannot probe for files.
        if !self.roots.iter().any(|root| joined.starts_with(root)) {
            return Err(outside());
        }
        let real = std::fs::canonicalize(&joined)
            .map_err(|_| ToolError::Path(format!("`{path}` does not exist")))?;
        // A link inside the roots may still point out of them.
        if !self.roots.iter().any(|root| real.starts_with(root)) {
            return Err(outside());
        }
        Ok(real)
    }

    /// `path` as the model should see it: relative to the base when inside it.
    pub fn display(&self, path: &Path) -> String {
        let base = std::fs::canonicalize(&self.base).unwrap_or_else(|_| self.base.clone());
        path.strip_prefix(&base)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// A tool shared with the threads that run its calls (questions asked together call the
/// same tools), and how many abandoned calls still run.
struct SharedTool {
    tool: Mutex<Box<dyn Tool>>,
    stuck: AtomicUsize,
}

/// Where one call stands: whichever of the call and the timeout comes first says so.
const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const ABANDONED: u8 = 2;

/// The tools offered to the model, and those left out with the reason.
pub struct ToolSet {
    /// (name, spec for the model, the tool)
    tools: Vec<(String, Value, Arc<SharedTool>)>,
    pub unavailable: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Every tool name, in the order they are offered.
pub const TOOL_NAMES: &[&str] = &[
    "detect_objects",
    "classify_image",
    "classify_digit",
    "list_images",
    "calculator",
];

impl ToolSet {
    pub fn new(timeout: Duration) -> ToolSet {
        ToolSet {
            tools: Vec::new(),
            unavailable: Vec::new(),
            timeout,
        }
    }

    pub fn add(&mut self, tool: Box<dyn Tool>) {
        let spec = json!({
            "type": "function",
            "function": {
                "name": tool.name(),
                "description": tool.description(),
                "parameters": tool.parameters(),
            }
        });
        let name = tool.name().to_string();
        let shared = SharedTool {
            tool: Mutex::new(tool),
            stuck: AtomicUsize::new(0),
        };
        self.tools.push((name, spec, Arc::new(shared)));
    }

    pub fn leave_out(&mut self, name: &str, reason: impl Into<String>) {
        self.unavailable.push((name.to_string(), reason.into()));
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// OpenAI-style `{"type": "function", "function": {name, description, parameters}}`
    /// entries, as chat templates with tool support expect them.
    pub fn specs(&self) -> Vec<Value> {
        self.tools.iter().map(|(_, s, _)| s.clone()).collect()
    }

    /// Runs a tool on its own thread so a slow one can be abandoned after the timeout
    /// (it is then refused to later calls until that call ends). A call made while
    /// another question's call runs waits for it.
    pub fn call(
        &self,
        name: &str,
        args: &Value,
        context: &ToolContext,
    ) -> Result<Value, ToolError> {
        let Some((_, _, tool)) = self.tools.iter().find(|(n, _, _)| n == name) else {
            return Err(ToolError::Unknown(name.to_string()));
        };
        let tool = Arc::clone(tool);
        let (args, context) = (args.clone(), context.clone());
        let (tx, rx) = mpsc::channel();
        if tool.stuck.load(Ordering::SeqCst) > 0 {
            return Err(ToolError::Failed(
                "the tool is still busy with an earlier call that timed out".into(),
            ));
        }
        let running = Arc::clone(&tool);
        let state = Arc::new(AtomicU8::new(RUNNING));
        let call_state = Arc::clone(&state);
        std::thread::spawn(move || {
            // A panic in an earlier call poisons the lock, not the tool's use.
            let mut guard = running.tool.lock().unwrap_or_else(|e| e.into_inner());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                guard.call(&args, &context)
            }))
            .unwrap_or_else(|_| Err(ToolError::Failed("the tool crashed".into())));
            drop(guard);
            let ended =
                call_state.compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst);
            if ended.is_err() {
                running.stuck.fetch_sub(1, Ordering::SeqCst);
            }
            let _ = tx.send(result);
        });
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => {
                // Counted before the call can see it abandoned, so the count never dips.
                tool.stuck.fetch_add(1, Ordering::SeqCst);
                let abandoned =
                    state.compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst);
                match abandoned {
                    Ok(_) => Err(ToolError::TimedOut(self.timeout)),
                    // It finished just as the time ran out.
                    Err(_) => {
                        tool.stuck.fetch_sub(1, Ordering::SeqCst);
                        rx.recv().unwrap_or(Err(ToolError::TimedOut(self.timeout)))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_roots_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        std::fs::create_dir_all(root.join("photos")).unwrap();
        std::fs::write(root.join("photos/a.png"), b"x").unwrap();
        std::fs::write(outside.path().join("secret.png"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("photos/escape")).unwrap();
        std::os::unix::fs::symlink(root.join("photos/a.png"), root.join("inside.png")).unwrap();
        let context = ToolContext::new(vec![root.to_path_buf()], root.to_path_buf());

        assert!(context.resolve("photos/a.png").is_ok());
        assert!(
            context.resolve("inside.png").is_ok(),
            "a link that stays inside"
        );
        let absolute_inside = root.join("photos/a.png");
        assert!(context.resolve(absolute_inside.to_str().unwrap()).is_ok());
        let refused = |path: &str, needle: &str| {
            let err = context.resolve(path).unwrap_err().to_string();
            assert!(err.contains(needle), "{path}: {err}");
        };
        refused("../secret.png", "may not contain `..`");
        refused("photos/../photos/a.png", "may not contain `..`");
        refused(
            outside.path().join("secret.png").to_str().unwrap(),
            "outside the folders",
        );
        refused("photos/escape/secret.png", "outside the folders");
        refused("/etc/passwd", "outside the folders");
        // Issue 20: outside the roots, existing and missing files get the same answer.
        refused("/etc/no-such-file-here", "outside the folders");
        refused(
            outside.path().join("missing.png").to_str().unwrap(),
            "outside the folders",
        );
        refused("photos/missing.png", "does not exist");
        refused("  ", "empty");
    }

    struct Sleepy;
    impl Tool for Sleepy {
        fn name(&self) -> &'static str {
            "sleepy"
        }
        fn description(&self) -> String {
            "sleeps".into()
        }
        fn parameters(&self) -> Value {
            json!({"type": "object"})
        }
        fn call(&mut self, args: &Value, _: &ToolContext) -> Result<Value, ToolError> {
            if args.get("panic").is_some() {
                panic!("boom");
            }
            std::thread::sleep(Duration::from_millis(300));
            Ok(json!("done"))
        }
    }

    #[test]
    fn slow_failing_and_unknown_tools_become_errors() {
        let dir = tempfile::tempdir().unwrap();
        let context = ToolContext::new(vec![dir.path().into()], dir.path().into());
        let mut tools = ToolSet::new(Duration::from_millis(50));
        tools.add(Box::new(Sleepy));
        assert_eq!(
            tools.call("sleepy", &json!({}), &context),
            Err(ToolError::TimedOut(Duration::from_millis(50)))
        );
        let busy = tools.call("sleepy", &json!({}), &context).unwrap_err();
        assert!(busy.to_string().contains("still busy"), "{busy}");
        std::thread::sleep(Duration::from_millis(400));
        // Printing a panic (with a backtrace) can take longer than 50 ms.
        tools.timeout = Duration::from_secs(10);
        let crashed = tools.call("sleepy", &json!({"panic": true}), &context);
        assert_eq!(crashed, Err(ToolError::Failed("the tool crashed".into())));
        assert_eq!(
            tools.call("nope", &json!({}), &context),
            Err(ToolError::Unknown("nope".into()))
        );
        assert_eq!(tools.specs()[0]["function"]["name"], "sleepy");
    }
}
