//! Proposal templates shipped with this project (`templates/` at the workspace root), compiled
//! in. The release-config repository's own `templates/*.yml.j2` take precedence over these.

/// (file name, content).
pub const SHIPPED: [(&str, &str); 3] = [
    (
        "sglang.yml.j2",
        include_str!("../../../templates/sglang.yml.j2"),
    ),
    ("tgi.yml.j2", include_str!("../../../templates/tgi.yml.j2")),
    (
        "vllm.yml.j2",
        include_str!("../../../templates/vllm.yml.j2"),
    ),
];

/// The template name an agent passes as `template_name`: the file name without `.yml.j2`.
pub fn template_name(file_name: &str) -> &str {
    file_name.strip_suffix(".yml.j2").unwrap_or(file_name)
}
