//! The static catalog of every tool of the MCP surface (shared/spec/mcp-surface.md): each tool
//! group declares its rows (toolset, R/W/D class) beside its tools, and this module joins them
//! into [`CATALOG`] at compile time. Selection (`--toolsets`, `--tools`, read-only, production
//! gate), name validation and the annotations work on this table.

use std::fmt;

use rmcp::model::ToolAnnotations;
use serde::Serialize;

/// A group of tools that `--toolsets` switches on as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Toolset {
    Models,
    Versions,
    Deployments,
    Docker,
    Benchmarks,
    ReleaseConfigs,
    Artifacts,
    System,
    Search,
}

impl Toolset {
    pub const ALL: [Toolset; 9] = [
        Toolset::Models,
        Toolset::Versions,
        Toolset::Deployments,
        Toolset::Docker,
        Toolset::Benchmarks,
        Toolset::ReleaseConfigs,
        Toolset::Artifacts,
        Toolset::System,
        Toolset::Search,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Models => "models",
            Toolset::Versions => "versions",
            Toolset::Deployments => "deployments",
            Toolset::Docker => "docker",
            Toolset::Benchmarks => "benchmarks",
            Toolset::ReleaseConfigs => "release_configs",
            Toolset::Artifacts => "artifacts",
            Toolset::System => "system",
            Toolset::Search => "search",
        }
    }

    pub fn from_name(name: &str) -> Option<Toolset> {
        Toolset::ALL
            .into_iter()
            .find(|toolset| toolset.as_str() == name)
    }
}

impl fmt::Display for Toolset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The annotation class of a tool (spec: R, W, D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ToolClass {
    /// Reads only.
    #[serde(rename = "R")]
    Read,
    /// Writes, additively.
    #[serde(rename = "W")]
    Write,
    /// Writes, and may destroy something.
    #[serde(rename = "D")]
    Destructive,
}

impl ToolClass {
    pub fn letter(self) -> &'static str {
        match self {
            ToolClass::Read => "R",
            ToolClass::Write => "W",
            ToolClass::Destructive => "D",
        }
    }

    pub fn is_write(self) -> bool {
        !matches!(self, ToolClass::Read)
    }
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub toolset: Toolset,
    pub class: ToolClass,
    pub idempotent: bool,
    pub open_world: bool,
}

impl CatalogEntry {
    /// The annotations the spec prescribes for this entry, every hint explicit. The title is the
    /// tool's own `title`, not repeated here (tools/list size).
    pub fn annotations(&self) -> ToolAnnotations {
        ToolAnnotations::new()
            .read_only(self.class == ToolClass::Read)
            .destructive(self.class == ToolClass::Destructive)
            .idempotent(self.idempotent)
            .open_world(self.open_world)
    }
}

/// The role of a registry API key (spec `registry-api.md`: viewer reads, operator writes but
/// deletes, admin everything), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyRole {
    Viewer,
    Operator,
    Admin,
}

impl KeyRole {
    pub fn parse(name: &str) -> Option<KeyRole> {
        match name {
            "viewer" => Some(KeyRole::Viewer),
            "operator" => Some(KeyRole::Operator),
            "admin" => Some(KeyRole::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Viewer => "viewer",
            KeyRole::Operator => "operator",
            KeyRole::Admin => "admin",
        }
    }
}

impl CatalogEntry {
    /// The least key role that can use the tool (contract "Roles"): reads need a viewer, writes
    /// an operator, deletes an admin.
    pub fn needs_role(&self) -> KeyRole {
        match self.class {
            ToolClass::Read => KeyRole::Viewer,
            _ if str_eq(self.name, "delete_model") => KeyRole::Admin,
            _ => KeyRole::Operator,
        }
    }
}

pub const fn entry(name: &'static str, toolset: Toolset, class: ToolClass) -> CatalogEntry {
    // Spec: idempotent for every R tool and for four named writes; open world for three tools.
    let idempotent = matches!(class, ToolClass::Read)
        || str_eq(name, "update_model")
        || str_eq(name, "promote_version")
        || str_eq(name, "stop_deployment")
        || str_eq(name, "start_deployment");
    let open_world = str_eq(name, "discover_api_spec")
        || str_eq(name, "get_deployment_health")
        || str_eq(name, "propose_release_config");
    CatalogEntry {
        name,
        toolset,
        class,
        idempotent,
        open_world,
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The tool groups' catalogs, in the contract's order: each group declares its own rows
/// (`tools/<group>.rs`), so adding a tool touches its group only.
const GROUPS: &[&[CatalogEntry]] = {
    use crate::tools::{
        artifacts, benchmarks, deployments, docker, models, placement, proposals, release_configs,
        search, system, versions,
    };
    &[
        models::CATALOG,
        versions::CATALOG,
        deployments::CATALOG,
        docker::CATALOG,
        benchmarks::CATALOG,
        release_configs::CATALOG,
        proposals::CATALOG,
        placement::CATALOG,
        artifacts::CATALOG,
        system::CATALOG,
        search::CATALOG,
    ]
};

const TOOL_COUNT: usize = {
    let mut count = 0;
    let mut group = 0;
    while group < GROUPS.len() {
        count += GROUPS[group].len();
        group += 1;
    }
    count
};

/// Every tool of the surface, in the contract's order.
pub const CATALOG: &[CatalogEntry] = &concat::<TOOL_COUNT>(GROUPS);

/// The groups' rows as one array (a compile-time error if `N` is not their count).
const fn concat<const N: usize>(groups: &[&[CatalogEntry]]) -> [CatalogEntry; N] {
    let mut out = [entry("", Toolset::Search, ToolClass::Read); N];
    let mut at = 0;
    let mut group = 0;
    while group < groups.len() {
        let mut row = 0;
        while row < groups[group].len() {
            out[at] = groups[group][row];
            at += 1;
            row += 1;
        }
        group += 1;
    }
    assert!(at == N, "TOOL_COUNT is the groups' rows");
    out
}

/// The tool that writes to production; `REGISTRY_ALLOW_PRODUCTION_CHANGES=false` turns it off.
pub const PRODUCTION_TOOL: &str = "propose_release_config";

pub fn lookup(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|entry| entry.name == name)
}

#[cfg(test)]
mod tests {
    use super::Toolset::*;
    use super::*;

    #[test]
    fn catalog_matches_the_spec_counts() {
        // The spec's "Tools (42)" and the one beyond the design (find_placement): the one
        // place the count is written, checked here.
        assert_eq!(CATALOG.len(), 43);
        let reads = CATALOG
            .iter()
            .filter(|e| e.class == ToolClass::Read)
            .count();
        assert_eq!((reads, CATALOG.len() - reads), (31, 12));
        let per_toolset: Vec<(Toolset, usize)> = Toolset::ALL
            .iter()
            .map(|t| (*t, CATALOG.iter().filter(|e| e.toolset == *t).count()))
            .collect();
        assert_eq!(
            per_toolset,
            vec![
                (Models, 5),
                (Versions, 5),
                (Deployments, 10),
                (Docker, 5),
                (Benchmarks, 4),
                (ReleaseConfigs, 7),
                (Artifacts, 2),
                (System, 4),
                (Search, 1),
            ]
        );
    }

    #[test]
    fn names_are_unique_and_hints_follow_the_spec() {
        let mut names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        let idempotent_writes: Vec<&str> = CATALOG
            .iter()
            .filter(|e| e.class.is_write() && e.idempotent)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            idempotent_writes,
            [
                "update_model",
                "promote_version",
                "stop_deployment",
                "start_deployment"
            ]
        );
        let open: Vec<&str> = CATALOG
            .iter()
            .filter(|e| e.open_world)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            open,
            [
                "get_deployment_health",
                "discover_api_spec",
                "propose_release_config"
            ]
        );
    }
}
