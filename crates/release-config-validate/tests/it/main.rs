//! Integration tests of the validator.

mod baseline;
mod cli;
mod explain;
mod fixtures;
mod git;
mod markdown;
mod renderers;
mod sarif_shape;
mod support;
mod suppress;
