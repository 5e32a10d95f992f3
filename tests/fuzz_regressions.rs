//! Every fuzz input kept in the repository, run through its target's body on stable: the
//! hand-written seeds (`fuzz/seeds/<target>/`) and the minimized inputs of past crashes
//! (`fuzz/regressions/<target>/`). The bodies are the fuzz targets' own (`fuzz/src/lib.rs`,
//! included here), so a crash found by `fuzz/run.sh` becomes a test that needs no nightly.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod bodies;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

// The bodies assert that decoding allocates nothing; the counter needs this allocator.
#[global_allocator]
static ALLOC: bodies::FuzzAlloc = bodies::FuzzAlloc;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The inputs of `fuzz/regressions/open.txt` (`<target>/<file>` then why): known failures whose
/// fix is not on this branch yet.
fn open_inputs() -> BTreeSet<String> {
    let text = std::fs::read_to_string(fuzz_dir().join("regressions/open.txt")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Runs every file under `fuzz/<kind>/<target>/`; returns how many ran. A folder named after
/// no target is an error (a renamed target would otherwise silently stop being tested). An
/// input listed in `open.txt` may still fail (a NOTICE), and must fail: once it passes, the
/// test says to take it off the list.
fn run_all(kind: &str) -> usize {
    let open = open_inputs();
    let root = fuzz_dir().join(kind);
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut ran = 0;
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let body = bodies::target(&name)
            .unwrap_or_else(|| panic!("{}: no fuzz target of that name", dir.display()));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|f| f.is_file())
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let key = format!("{name}/{}", f.file_name().unwrap().to_string_lossy());
            let r = std::panic::catch_unwind(|| body(&data));
            if open.contains(&key) {
                assert!(
                    r.is_err(),
                    "{key} passes now: remove it from fuzz/regressions/open.txt"
                );
                eprintln!("NOTICE: {key} still fails (listed in fuzz/regressions/open.txt)");
            } else {
                assert!(r.is_ok(), "{} fails its target {name}", f.display());
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn fuzz_seeds_pass_their_targets() {
    let ran = run_all("seeds");
    assert!(ran >= bodies::TARGETS.len(), "only {ran} seed files");
}

#[test]
fn fuzz_regressions_stay_fixed() {
    let ran = run_all("regressions");
    let open = open_inputs();
    assert!(ran >= open.len(), "open.txt lists inputs that do not exist");
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in bodies::TARGETS {
        let d = fuzz_dir().join("seeds").join(name);
        let n = std::fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        assert!(n > 0, "{}: no seeds", d.display());
    }
}
