//! Which tools are switched on. Works on the whole catalog, implemented or not.

use std::fmt;

use serde::Serialize;

use crate::catalog::{self, CatalogEntry, PRODUCTION_TOOL};
use crate::config::Settings;

/// Why a catalog tool is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disabled {
    /// `REGISTRY_READ_ONLY=true` and the tool writes.
    ReadOnly,
    /// `REGISTRY_ALLOW_PRODUCTION_CHANGES=false` and the tool proposes production changes.
    ProductionGate,
    /// Listed in `--exclude-tools`.
    Excluded,
    /// Neither its toolset (`--toolsets`) nor its name (`--tools`) was selected.
    NotSelected,
    /// In the catalog, but this build has no implementation yet.
    NotImplemented,
}

impl Disabled {
    /// What to tell a caller: the setting responsible, and how to change it.
    pub fn explain(self, entry: &CatalogEntry) -> String {
        let name = entry.name;
        match self {
            Disabled::ReadOnly => format!(
                "tool '{name}' is disabled: the server runs in read-only mode (REGISTRY_READ_ONLY=true), \
                 which turns off every write tool"
            ),
            Disabled::ProductionGate => format!(
                "tool '{name}' is disabled: production changes are not allowed \
                 (REGISTRY_ALLOW_PRODUCTION_CHANGES=false)"
            ),
            Disabled::Excluded => {
                format!(
                    "tool '{name}' is disabled: it is listed in --exclude-tools (REGISTRY_EXCLUDE_TOOLS)"
                )
            }
            Disabled::NotSelected => format!(
                "tool '{name}' is disabled: its toolset '{}' is not among --toolsets (REGISTRY_TOOLSETS) \
                 and it is not named in --tools (REGISTRY_TOOLS)",
                entry.toolset
            ),
            Disabled::NotImplemented => {
                format!("tool '{name}' is not available in this build of model-registry-mcp")
            }
        }
    }
}

impl fmt::Display for Disabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disabled::ReadOnly => "read-only",
            Disabled::ProductionGate => "production gate",
            Disabled::Excluded => "excluded",
            Disabled::NotSelected => "not selected",
            Disabled::NotImplemented => "not implemented",
        })
    }
}

/// The decision for every catalog tool, given the settings and what is implemented.
/// Order of precedence: read-only, production gate, exclusion, selection, implementation.
pub fn decide(
    settings: &Settings,
    entry: &CatalogEntry,
    implemented: bool,
) -> Result<(), Disabled> {
    if settings.read_only && entry.class.is_write() {
        return Err(Disabled::ReadOnly);
    }
    if !settings.allow_production_changes && entry.name == PRODUCTION_TOOL {
        return Err(Disabled::ProductionGate);
    }
    if settings.exclude_tools.contains(&entry.name) {
        return Err(Disabled::Excluded);
    }
    let everything = settings.toolsets.is_empty() && settings.tools.is_empty();
    let selected = everything
        || settings.toolsets.contains(&entry.toolset)
        || settings.tools.contains(&entry.name);
    if !selected {
        return Err(Disabled::NotSelected);
    }
    if !implemented {
        return Err(Disabled::NotImplemented);
    }
    Ok(())
}

/// Every catalog entry with its decision.
pub fn table(
    settings: &Settings,
    is_implemented: impl Fn(&str) -> bool,
) -> Vec<(&'static CatalogEntry, Result<(), Disabled>)> {
    catalog::CATALOG
        .iter()
        .map(|entry| (entry, decide(settings, entry, is_implemented(entry.name))))
        .collect()
}
