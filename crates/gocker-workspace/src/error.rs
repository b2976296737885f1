//! The one error type of the workspace domain, with the service's stable error codes.

use serde::{Deserialize, Serialize};

/// The stable error codes of the API (`{"error": {"code", "message"}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    Unauthorized,
    PolicyDenied,
    NotFound,
    ApprovalRequired,
    RateLimited,
    Timeout,
    ExecutionFailed,
    Interrupted,
    ProviderUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ApprovalRequired => "approval_required",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ExecutionFailed => "execution_failed",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the service answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::PolicyDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::ApprovalRequired => 428,
            ErrorCode::RateLimited => 429,
            ErrorCode::Timeout => 504,
            ErrorCode::ExecutionFailed => 422,
            ErrorCode::Interrupted => 503,
            ErrorCode::ProviderUnavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// Whether the same call may succeed when retried unchanged.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::Timeout | ErrorCode::Interrupted
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the workspace domain; each variant is one stable code.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PolicyDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    ApprovalRequired(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    ExecutionFailed(String),
    #[error("{0}")]
    Interrupted(String),
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl WorkspaceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            WorkspaceError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            WorkspaceError::Unauthorized(_) => ErrorCode::Unauthorized,
            WorkspaceError::PolicyDenied(_) => ErrorCode::PolicyDenied,
            WorkspaceError::NotFound(_) => ErrorCode::NotFound,
            WorkspaceError::ApprovalRequired(_) => ErrorCode::ApprovalRequired,
            WorkspaceError::RateLimited { .. } => ErrorCode::RateLimited,
            WorkspaceError::Timeout(_) => ErrorCode::Timeout,
            WorkspaceError::ExecutionFailed(_) => ErrorCode::ExecutionFailed,
            WorkspaceError::Interrupted(_) => ErrorCode::Interrupted,
            WorkspaceError::ProviderUnavailable(_) => ErrorCode::ProviderUnavailable,
            WorkspaceError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// An I/O error on `what` (a path or an operation), as an internal error naming it.
    pub fn io(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        WorkspaceError::Internal(format!("{what}: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, WorkspaceError>;
