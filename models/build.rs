//! Rebuilds this crate when a migration is added or changed.
//!
//! `sqlx::migrate!` (in `src/db.rs`) embeds `../migrations` when the crate compiles, and Cargo
//! reruns it only when a file it knows about changes: a new migration is a new file, so without
//! this an incremental build — CI keeps its target directory between runs — would go on
//! migrating to the previous list. The build script the `migrate!` documentation recommends.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
