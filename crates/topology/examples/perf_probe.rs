//! Temporary profiling probe (removed before hand-off).
use std::time::Instant;
use topology::engine::Engine;
use topology::repo::{DirReader, Repository};

fn main() {
    let root = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let file = "machines/node-00007/8000/docker-compose.yml";
    let path = root.join(file);
    let original = std::fs::read_to_string(&path).unwrap();
    let reader = DirReader::new(&root).unwrap();
    let mut engine = Engine::new();
    let t = Instant::now();
    let fleet = engine.analyze(&reader.snapshot().unwrap()).unwrap();
    eprintln!("cold dir {:?} {:?}", t.elapsed(), engine.stats().last.timings);
    drop(fleet);
    for i in 0..5 {
        std::fs::write(&path, format!("{original}# e {i}\n")).unwrap();
        let t = Instant::now();
        let snap = reader.snapshot().unwrap();
        let ts = t.elapsed();
        let fleet = engine.analyze(&snap).unwrap();
        let ta = t.elapsed();
        drop(fleet);
        let td = t.elapsed();
        eprintln!("dir snap {ts:?} total {ta:?} +drop {td:?} {:?}", engine.stats().last.timings);
    }
    std::fs::write(&path, original).unwrap();
    let repo = Repository::open(&root).unwrap();
    let mut engine = Engine::new();
    engine.analyze(&repo.snapshot("main").unwrap()).unwrap();
    for i in 0..6 {
        let rev = if i % 2 == 0 { "bench-one-file" } else { "main" };
        let t = Instant::now();
        let snap = repo.snapshot(rev).unwrap();
        let ts = t.elapsed();
        let fleet = engine.analyze(&snap).unwrap();
        let ta = t.elapsed();
        drop(fleet);
        eprintln!("git snap {ts:?} total {ta:?} {:?}", engine.stats().last.timings);
    }
}
