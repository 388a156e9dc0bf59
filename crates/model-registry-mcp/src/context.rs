//! What every tool and resource handler gets: the settings and the services built from them.

use std::sync::{Arc, OnceLock};

use registry_client::RegistryClient;

use crate::config::Settings;
use crate::github::GitHub;
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
    /// The GitHub client for proposals, built on first use (as the registry client).
    github: OnceLock<Result<GitHub, String>>,
}

impl Shared {
    pub fn new(settings: Settings, release_configs: Arc<ReleaseConfigState>) -> Shared {
        Shared {
            settings,
            release_configs,
            registry: OnceLock::new(),
            github: OnceLock::new(),
        }
    }

    /// The GitHub client proposals open pull requests with, or what is missing for one.
    pub fn github(&self) -> &Result<GitHub, String> {
        self.github.get_or_init(|| {
            let settings = &self.settings;
            let token = settings.github_token.as_ref().ok_or_else(|| {
                "opening a pull request needs a GitHub token: set REGISTRY_GITHUB_TOKEN (or \
                 GITHUB_TOKEN); without one a proposal pushes its branch only"
                    .to_owned()
            })?;
            let repository = settings.github_repository.clone().ok_or_else(|| {
                "opening a pull request needs the GitHub repository: set \
                 REGISTRY_GITHUB_REPOSITORY=OWNER/NAME (REGISTRY_RELEASE_CONFIG_REPO is not a \
                 GitHub URL it can be read from)"
                    .to_owned()
            })?;
            GitHub::new(
                &settings.github_api_url,
                token,
                repository,
                settings.request_timeout,
            )
        })
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
