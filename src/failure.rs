//! Which kind of failure an error is: bad input the user can fix by editing a file or an
//! argument, or a runtime failure (an engine crash, I/O, a locked or full disk). Binaries
//! map the two to different exit codes; the decision lives beside the error types.

use std::error::Error;

use crate::agent::AgentError;
use crate::agent::eval::runner::AgentRunError;
use crate::agent::session::SessionError;
use crate::engine::EngineError;
use crate::evaluation::EvaluationError;
use crate::run::RunError;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A file, a flag or the configuration is wrong; the message names what to change.
    BadInput,
    /// The work could not be done on this machine right now: an engine crashed or
    /// failed mid-generation, memory or disk ran out, a file could not be read or written.
    Runtime,
}

/// The kind of `err` when it is one of the library's errors (or an I/O error), looking
/// through the wrappers that forward another error's message.
pub fn classify(err: &(dyn Error + 'static)) -> Option<Failure> {
    if let Some(e) = err.downcast_ref::<EvaluationError>() {
        // Its variants forward their inner error's message and source, not the error
        // itself, so the chain would not show it.
        return match e {
            EvaluationError::Run(inner) => classify(inner),
            EvaluationError::Agent(inner) => classify(inner),
            EvaluationError::Store(inner) => Some(store(inner)),
            EvaluationError::Project(_)
            | EvaluationError::EvalSet(_)
            | EvaluationError::Promptfoo(_)
            | EvaluationError::Plan(_)
            | EvaluationError::ResumeWithoutStore { .. }
            | EvaluationError::NotForAgentSets { .. } => Some(Failure::BadInput),
        };
    }
    if let Some(e) = err.downcast_ref::<EngineError>() {
        return Some(engine(e));
    }
    if let Some(e) = err.downcast_ref::<StoreError>() {
        return Some(store(e));
    }
    if let Some(e) = err.downcast_ref::<SessionError>() {
        return Some(session(e));
    }
    if let Some(e) = err.downcast_ref::<AgentRunError>() {
        return Some(match e {
            AgentRunError::Session(e) => session(e),
            AgentRunError::Store(e) => store(e),
            _ => Failure::BadInput,
        });
    }
    if let Some(e) = err.downcast_ref::<AgentError>() {
        return Some(agent(e));
    }
    if let Some(e) = err.downcast_ref::<RunError>() {
        return Some(match e {
            RunError::Store(e) => store(e),
            RunError::Judge(_) => Failure::Runtime,
            RunError::Resume { .. } => Failure::BadInput,
        });
    }
    if let Some(e) = err.downcast_ref::<std::io::Error>() {
        return Some(io(e));
    }
    None
}

/// A file named by the user that is absent or not what it should be is bad input; the
/// rest (a full disk, a denied write, a device error) is the machine's.
fn io(err: &std::io::Error) -> Failure {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::InvalidData
        | ErrorKind::InvalidInput => Failure::BadInput,
        _ => Failure::Runtime,
    }
}

fn engine(err: &EngineError) -> Failure {
    match err {
        EngineError::Crashed(_) | EngineError::Generation(_) => Failure::Runtime,
        EngineError::Load(_)
        | EngineError::LoadCrashed(_)
        | EngineError::NoChatTemplate { .. }
        | EngineError::ChatTemplate(_)
        | EngineError::PromptTooLong { .. }
        | EngineError::Schema(_) => Failure::BadInput,
    }
}

fn store(err: &StoreError) -> Failure {
    match err {
        StoreError::Open { .. }
        | StoreError::Locked { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::DiskFull { .. }
        | StoreError::Sqlite { .. } => Failure::Runtime,
        StoreError::NewerSchema { .. }
        | StoreError::NotADatabase { .. }
        | StoreError::NoSuchRun { .. }
        | StoreError::Corrupt { .. }
        | StoreError::InvalidInput { .. } => Failure::BadInput,
    }
}

fn session(err: &SessionError) -> Failure {
    match err {
        SessionError::Store(e) => store(e),
        SessionError::Engine(e) => engine(e),
        SessionError::Agent(e) => agent(e),
        _ => Failure::BadInput,
    }
}

fn agent(err: &AgentError) -> Failure {
    match err {
        AgentError::Engine(e) => engine(e),
        _ => Failure::BadInput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_engine_crash_is_a_runtime_failure() {
        let crash = EngineError::Crashed("segfault".into());
        let wrapped = AgentRunError::Session(SessionError::Engine(crash));
        assert_eq!(classify(&wrapped), Some(Failure::Runtime));
        let missing = SessionError::Engine(EngineError::Load("no such file".into()));
        assert_eq!(classify(&missing), Some(Failure::BadInput));
    }

    #[test]
    fn an_evaluation_error_is_classified_by_what_it_wraps() {
        let crash = EngineError::Crashed("segfault".into());
        let wrapped = EvaluationError::Agent(AgentRunError::Session(SessionError::Engine(crash)));
        assert_eq!(classify(&wrapped), Some(Failure::Runtime));
        let full = EvaluationError::Store(StoreError::DiskFull {
            path: "runs.db".into(),
            action: "recording".into(),
        });
        assert_eq!(classify(&full), Some(Failure::Runtime));
        let resume = EvaluationError::ResumeWithoutStore {
            path: "set.yaml".into(),
        };
        assert_eq!(classify(&resume), Some(Failure::BadInput));
    }

    #[test]
    fn store_faults_split_by_who_can_fix_them() {
        let path = std::path::PathBuf::from("runs.db");
        let full = StoreError::DiskFull {
            path: path.clone(),
            action: "recording".into(),
        };
        assert_eq!(classify(&full), Some(Failure::Runtime));
        let missing = RunError::Store(StoreError::NoSuchRun { path, run_id: 7 });
        assert_eq!(classify(&missing), Some(Failure::BadInput));
        let unknown = std::fmt::Error;
        assert_eq!(classify(&unknown), None);
    }

    #[test]
    fn a_missing_input_file_is_bad_input_a_full_disk_is_not() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(classify(&missing), Some(Failure::BadInput));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(classify(&full), Some(Failure::Runtime));
    }
}
