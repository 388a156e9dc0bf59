//! Integration tests of the topology engine (one test binary for the crate).

mod compose;
mod compose_reference;
mod engine;
mod hostile;
mod interpolate;
mod layout;
mod proposal;
mod repo;
mod rules;
mod support;
mod yaml;
