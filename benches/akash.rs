//! Placeholder so the manifest parses while the Akash benchmark is being written; replace me.
fn main() {}
