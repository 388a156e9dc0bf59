//! What every tool and resource handler gets: the settings and the services built from them.

use std::sync::{Arc, OnceLock};

use registry_client::RegistryClient;

use crate::config::Settings;
use crate::release_configs::state::ReleaseConfigState;

/// Shared by every session and request; cheap to clone.
pub type Ctx = Arc<Shared>;

pub struct Shared {
    pub settings: Settings,
    /// Production topology from the release-config repository.
    pub release_configs: Arc<ReleaseConfigState>,
    /// The Registry Server client, built on first use: building it (TLS roots, connection pools)
    /// costs milliseconds that must not delay the `initialize` answer.
    registry: OnceLock<Result<RegistryClient, String>>,
}

impl Shared {
    pub fn new(settings: Settings, release_configs: Arc<ReleaseConfigState>) -> Shared {
        Shared {
            settings,
            release_configs,
            registry: OnceLock::new(),
        }
    }

    /// The Registry Server client, or why it could not be built (a URL the client refuses).
    pub fn registry(&self) -> &Result<RegistryClient, String> {
        self.registry
            .get_or_init(|| crate::registry::build_client(&self.settings))
    }

    /// Whether the registry client has been built yet (start-up tests).
    pub fn registry_built(&self) -> bool {
        self.registry.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    /// The registry client (TLS roots: milliseconds) is not built before it is needed, so that
    /// nothing slow happens before the `initialize` answer.
    #[test]
    fn the_registry_client_is_built_on_first_use() {
        let (_cli, settings) =
            Settings::parse_from(["model-registry-mcp", "--registry-api-key", "sk-test"])
                .unwrap_or_else(|e| panic!("{e:?}"));
        let surface = crate::server::Surface::new(crate::build_context(settings));
        assert!(!surface.listed_tools().is_empty());
        assert!(!surface.ctx().registry_built());
        assert!(surface.ctx().registry().is_ok());
        assert!(surface.ctx().registry_built());
    }
}
