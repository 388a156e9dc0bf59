//! What every tool and resource handler gets: the settings and the services built from them.

use std::sync::Arc;

use registry_client::RegistryClient;

use crate::config::Settings;
use crate::release_configs::state::ReleaseConfigState;

/// Shared by every session and request; cheap to clone.
pub type Ctx = Arc<Shared>;

pub struct Shared {
    pub settings: Settings,
    /// Production topology from the release-config repository.
    pub release_configs: Arc<ReleaseConfigState>,
    /// The Registry Server client, or why it could not be built.
    pub registry: Result<RegistryClient, String>,
}
