//! Times `topology::yaml::parse` on a realistic docker-compose file, and the
//! saphyr-only path beside it, so the fast path's gain stays visible.
//!
//! `cargo run --release -p topology --example yaml_speed`
//! (`-- --loop` parses for a few seconds and prints nothing, for `perf`).

// A measuring tool run by hand: a failed expectation stops it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use topology::yaml::{Limits, parse, parse_fast_path, parse_with_saphyr};

/// A GPU host's compose file as the release-config repository holds them:
/// an `x-common` block merged into two services, a vLLM server with a GPU
/// reservation, environment maps, command lists, ports and labels.
const COMPOSE: &str = r#"# Managed by release-config. Do not edit by hand on the host.
x-common: &common
  restart: unless-stopped
  logging:
    driver: json-file
    options:
      max-size: "50m"
      max-file: "3"
  labels:
    com.example.team: ml-platform
    com.example.managed-by: catapult

services:
  vllm-llama3-70b:
    <<: *common
    image: "registry.internal.example.com/vllm/vllm-openai:v0.6.3.post1"
    container_name: vllm-llama3-70b
    command:
      - "--model"
      - "meta-llama/Meta-Llama-3-70B-Instruct"
      - "--tensor-parallel-size"
      - "4"
      - "--max-model-len"
      - "8192"
      - "--gpu-memory-utilization"
      - "0.92"
      - --port
      - "8000"
    environment:
      HF_HOME: /models/hf
      HUGGING_FACE_HUB_TOKEN: ${HF_TOKEN}
      VLLM_WORKER_MULTIPROC_METHOD: spawn
      NCCL_P2P_DISABLE: "0"
      OMP_NUM_THREADS: 8
    ports:
      - "8000:8000"
      - "127.0.0.1:9400:9400"
    volumes:
      - /srv/models:/models:ro
      - type: tmpfs
        target: /dev/shm
        tmpfs:
          size: 17179869184
    ipc: host
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ['0', '1', '2', '3']
              capabilities: [gpu]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8000/health"]
      interval: 30s
      timeout: 10s
      retries: 5
    labels:
      com.example.model: meta-llama/Meta-Llama-3-70B-Instruct   # served model
      com.example.gpus: "4"

  embeddings:
    <<: *common
    image: registry.internal.example.com/tei/text-embeddings-inference:1.5
    command: ["--model-id", "BAAI/bge-large-en-v1.5", "--port", "8080"]
    environment:
      - RUST_LOG=info
      - MAX_BATCH_TOKENS=16384
    ports:
      - 8080:8080
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ["4"]
              capabilities: [gpu]
"#;

/// Best time per parse of each reader. Rounds of the readers alternate and
/// the best round counts, so load from other processes on a shared machine
/// hits all of them alike and mostly drops out.
fn best_times(readers: &[&dyn Fn(&str) -> bool]) -> Vec<Duration> {
    const ROUNDS: usize = 40;
    const PER_ROUND: u32 = 500;
    let mut best = vec![Duration::MAX; readers.len()];
    for round in 0..=ROUNDS {
        for (reader, best) in readers.iter().zip(&mut best) {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                assert!(reader(black_box(COMPOSE)));
            }
            // Round 0 warms up.
            if round > 0 {
                *best = (*best).min(start.elapsed() / PER_ROUND);
            }
        }
    }
    best
}

fn main() {
    let limits = Limits::default();
    if std::env::args().any(|a| a == "--loop") {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            for _ in 0..1_000 {
                assert!(parse(black_box(COMPOSE), &limits).is_ok());
            }
        }
        return;
    }
    let fast_tree = parse(COMPOSE, &limits).expect("the sample parses");
    let saphyr_tree = parse_with_saphyr(COMPOSE, &limits).expect("the sample parses");
    assert_eq!(fast_tree, saphyr_tree, "both paths must give the same tree");
    assert!(
        parse_fast_path(COMPOSE, &limits).is_some(),
        "the sample must take the fast path, or the timing means nothing"
    );

    let saphyr_events = |src: &str| {
        let mut parser = saphyr_parser::Parser::new_from_str(src);
        let mut count = 0usize;
        while let Some(Ok(_)) = parser.next_event() {
            count += 1;
        }
        count > 0
    };
    let with_saphyr = |src: &str| parse_with_saphyr(src, &limits).is_ok();
    let fast = |src: &str| parse(src, &limits).is_ok();
    let best = best_times(&[&saphyr_events, &with_saphyr, &fast]);
    let [saphyr_events, with_saphyr, parse_time] = best[..] else {
        unreachable!("three readers timed");
    };
    let speedup = with_saphyr.as_secs_f64() / parse_time.as_secs_f64();
    println!("compose sample: {} bytes", COMPOSE.len());
    println!("saphyr events only:        {saphyr_events:>10.2?} per file");
    println!("parse via saphyr:          {with_saphyr:>10.2?} per file");
    println!("parse (fast path):         {parse_time:>10.2?} per file");
    println!("speedup:                   {speedup:>10.1}x");
    println!("5,000 files, one core:     {:>10.2?}", parse_time * 5_000);
}
