//! The `model-registry-mcp` program, built inside the `tests` package so that its end-to-end
//! tests get `CARGO_BIN_EXE_e2e-model-registry-mcp` (Cargo only sets `CARGO_BIN_EXE_*` for a
//! package's own binaries). Same entry point as `crates/model-registry-mcp/src/main.rs`.

fn main() -> std::process::ExitCode {
    model_registry_mcp::process_main()
}
