//! Compose variable interpolation (`$VAR`, `${VAR:-default}`, ...) and `.env`
//! files. Values come from the deployment's `.env` only, never from the
//! process environment, so results are reproducible.

use std::collections::BTreeMap;

/// Variables of one deployment, from its `.env`.
pub type Vars = BTreeMap<String, String>;

/// The interpolated text and the plain `${VAR}`/`$VAR` references whose
/// variable was unset (they became empty: RC005).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub text: String,
    pub unset: Vec<String>,
}

/// A required variable is missing (`${VAR:?msg}`), or the expression is
/// malformed (`${`, `${VAR`, `${1x}`): RC003.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InterpolationError {
    pub message: String,
    /// Byte offset of the offending `$` in the input.
    pub offset: usize,
}

pub fn interpolate(input: &str, vars: &Vars) -> Result<Interpolated, InterpolationError> {
    let _ = (input, vars);
    todo!("interpolation helper")
}

/// A malformed `.env` line: RC003 at `line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvFileError {
    pub line: u32,
    pub message: String,
}

/// Reads a `.env` file as Compose does: `KEY=value`, optional `export `,
/// comments, single/double quotes, blank lines. Later keys win.
pub fn parse_env_file(src: &str) -> Result<Vars, Vec<EnvFileError>> {
    let _ = src;
    todo!("interpolation helper")
}
