//! Stable replay of the fuzz corpus: runs each cargo-fuzz target's function
//! (`fuzz/targets.rs`) over every committed seed in `fuzz/corpus/<target>/`,
//! so CI exercises the targets without nightly or libFuzzer.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::{fs, path::Path};

#[test]
fn every_target_passes_its_committed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let mut count = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} fails on {}",
                path.display()
            );
            count += 1;
        }
        assert!(count >= 20, "{name}: only {count} seeds");
    }
}
