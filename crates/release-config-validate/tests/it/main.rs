//! Integration tests of the validator.

mod renderers;
