//! Production topology from the release-config repository (served by the topology engine).

pub(crate) mod from_engine;
pub mod loader;
pub mod results;
pub mod state;
pub mod view;
