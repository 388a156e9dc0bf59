//! `model-registry-mcp`: the MCP server. All behaviour lives in the library.

fn main() -> std::process::ExitCode {
    model_registry_mcp::process_main()
}
