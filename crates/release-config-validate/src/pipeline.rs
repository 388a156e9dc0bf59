//! Reading the repository and running the engine. (Wired once the engine lands.)

use std::path::PathBuf;

use crate::Args;
use crate::report::Report;

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("engine not available yet")]
    Engine,
    #[error("cannot write the report: {source}")]
    Output { source: std::io::Error },
    #[error("cannot append to the step summary {}: {source}", path.display())]
    StepSummary { path: PathBuf, source: std::io::Error },
}

pub struct Validated {
    pub report: Report,
}

impl Validated {
    pub fn source(&self, _path: &str) -> Option<String> {
        None
    }
}

pub fn validate(_args: &Args) -> Result<Validated, ValidateError> {
    Err(ValidateError::Engine)
}
