//! Production topology from the release-config repository (served by the topology engine).

mod from_engine;
pub mod loader;
pub mod state;
pub mod view;
