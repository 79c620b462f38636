//! Where the shared corpus lives, and what a test does when it is absent.

use std::path::PathBuf;

/// `../shared` beside the repository, if it is there. Without it a test says so and skips,
/// except under `CI=true`, where a missing corpus is a failure.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if dir.join("data/essen/deutschl").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared corpus is missing at {}",
            dir.display()
        );
    }
    eprintln!("skipped: no shared corpus at {}", dir.display());
    None
}
