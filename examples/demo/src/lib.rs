//! The demo's library target holds only this page: the project README,
//! whose Rust examples `cargo test --doc` compiles and runs from the project
//! root (the demo is the workspace's default member).
#![doc = include_str!("../../../README.md")]
// The README links to folders of the repository, not to items.
#![allow(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]
