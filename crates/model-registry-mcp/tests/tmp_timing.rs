use std::time::Instant;
#[test]
fn timing() {
    for _ in 0..3 {
        let (_cli, settings) = model_registry_mcp::config::Settings::parse_from(["m", "--registry-api-key", "k"]).unwrap();
        let t = Instant::now();
        let c = model_registry_mcp::registry::build_client(&settings);
        let client_ms = t.elapsed().as_secs_f64() * 1e3;
        drop(c);
        let t = Instant::now();
        let ctx = model_registry_mcp::build_context(settings.clone());
        let ctx_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let surface = model_registry_mcp::server::Surface::new(ctx);
        let surface_ms = t.elapsed().as_secs_f64() * 1e3;
        println!("client {client_ms:.2} ms, context {ctx_ms:.2} ms, surface {surface_ms:.2} ms, built {}", surface.ctx().registry_built());
    }
}
