//! The release-config engine: reads a release-config repository (a directory or
//! a Git revision), models machines, GPUs, ports and deployments, and checks
//! them against the contract in `shared/spec/release-config-repo.md`.
//!
//! Nothing in this crate knows about MCP, JSON-RPC or HTTP.

pub mod capacity;
pub mod compose;
mod config;
pub mod dotenv;
pub mod engine;
pub mod finding;
pub mod graph;
pub mod interpolate;
pub mod inventory;
pub mod layout;
mod parallel;
pub mod placement;
pub mod proposal;
pub mod repo;
pub mod rules;
mod suppress;
pub mod yaml;

pub use finding::{Finding, Location, Related, Rule, Severity, Summary};
