//! Integration tests: the real binary, over stdio (rmcp client and raw lines) and HTTP.

mod bench;
mod cli;
mod http;
mod release_configs;
mod resources;
mod stdio_raw;
mod support;
mod surface;
