use std::time::Duration;

use registry_client::{DeploymentFilter, ModelFilter, ModelUpdate, VersionFilter};
use registry_emulator::Role;

use crate::{Env, must};

#[tokio::test]
async fn cached_reads_skip_the_server_until_a_write() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let id = env.model_id("bge-m3");
    let first = must(client.get_model(&id).await, "get");
    let second = must(client.get_model(&id).await, "get again");
    assert_eq!(first, second);
    assert_eq!(env.count("GET", &format!("/v1/models/{id}")), 1);
    must(client.list_models(&ModelFilter::default()).await, "list");
    must(client.list_models(&ModelFilter::default()).await, "list");
    // Another query is another cache entry.
    must(
        client
            .list_models(&ModelFilter {
                limit: Some(2),
                ..Default::default()
            })
            .await,
        "list 2",
    );
    assert_eq!(env.count("GET", "/v1/models"), 2);

    // Any write empties the whole cache.
    let update = ModelUpdate {
        description: Some("new".into()),
        ..Default::default()
    };
    must(
        client
            .update_model(&env.model_id("llama-3-70b-instruct"), &update)
            .await,
        "update",
    );
    let refreshed = must(client.get_model(&id).await, "get after write");
    assert_eq!(refreshed, first);
    assert_eq!(env.count("GET", &format!("/v1/models/{id}")), 2);

    // Clones share the cache.
    let clone = client.clone();
    must(clone.get_model(&id).await, "clone");
    assert_eq!(env.count("GET", &format!("/v1/models/{id}")), 2);
}

#[tokio::test]
async fn live_state_is_never_cached_and_ttl_expires() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let id = env.deployment_id("bge-m3", "1.0.0");
    must(client.get_deployment(&id).await, "get");
    must(client.get_deployment(&id).await, "get");
    must(client.health_check().await, "health");
    must(client.health_check().await, "health");
    assert_eq!(env.count("GET", &format!("/v1/deployments/{id}")), 2);
    assert_eq!(env.count("GET", "/v1/system/health"), 2);

    let mut config = env.config(Role::Viewer);
    config.cache_ttl = Duration::from_millis(100);
    let short = env.client_with(config);
    must(short.me().await, "me");
    must(short.me().await, "me cached");
    tokio::time::sleep(Duration::from_millis(150)).await;
    must(short.me().await, "me expired");
    assert_eq!(env.count("GET", "/v1/auth/me"), 2);

    let mut config = env.config(Role::Viewer);
    config.cache_ttl = Duration::ZERO;
    let uncached = env.client_with(config);
    must(uncached.me().await, "me");
    must(uncached.me().await, "me");
    assert_eq!(env.count("GET", "/v1/auth/me"), 4);
}

#[tokio::test]
async fn limits_are_clamped_and_pages_say_how_to_continue() {
    let env = Env::start().await;
    let mut config = env.config(Role::Viewer);
    config.max_results = 3;
    let client = env.client_with(config);
    assert_eq!(
        (
            client.effective_limit(None),
            client.effective_limit(Some(1000)),
            client.effective_limit(Some(0))
        ),
        (3, 3, 1)
    );

    let first = must(
        client
            .list_versions(&VersionFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await,
        "page 1",
    );
    assert_eq!((first.items.len(), first.total, first.limit), (3, 9, 3));
    assert_eq!((first.has_more(), first.next_offset()), (true, Some(3)));
    let sent = env
        .emu
        .requests()
        .snapshot()
        .into_iter()
        .rfind(|r| r.path == "/v1/versions")
        .and_then(|r| r.query);
    assert_eq!(sent.as_deref(), Some("limit=3&offset=0"));

    let mut seen = first.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
    let mut next = first.next_offset();
    while let Some(offset) = next {
        let page = must(
            client
                .list_versions(&VersionFilter {
                    offset: Some(offset),
                    ..Default::default()
                })
                .await,
            "page",
        );
        seen.extend(page.items.iter().map(|v| v.id.clone()));
        next = page.next_offset();
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 9, "paging visits every version once");

    // max_results above the server's cap is held at 500.
    let mut config = env.config(Role::Viewer);
    config.max_results = 10_000;
    let big = env.client_with(config);
    let page = must(
        big.list_deployments(&DeploymentFilter {
            limit: Some(9_999),
            ..Default::default()
        })
        .await,
        "big",
    );
    assert_eq!(page.limit, 500);
}
