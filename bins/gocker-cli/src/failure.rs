//! How the CLI fails: a message and docker's exit code (125 for its own errors).

use gocker_runtime::RuntimeError;

/// An error of the CLI itself: what to print and which exit code to use.
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 125,
        message: message.into(),
    }
}

pub(crate) fn report(f: Failure) -> i32 {
    eprintln!("gocker: {}", f.message);
    f.code
}
