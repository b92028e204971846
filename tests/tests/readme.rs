//! The README's version table says what the workspace builds with.

/// The version the workspace's `Cargo.toml` gives `name`, major.minor.
fn workspace_version(name: &str) -> String {
    let toml = include_str!("../../Cargo.toml");
    let line = toml
        .lines()
        .find(|l| l.starts_with(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("{name} is not a workspace dependency"));
    let v = line
        .split("version = \"")
        .nth(1)
        .or_else(|| line.split("= \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no version in {line}"));
    // "0.33.1" -> "0.33"; "1" -> "1".
    let parts: Vec<&str> = v.split('.').collect();
    match parts.as_slice() {
        [major] => (*major).to_owned(),
        [major, minor, ..] if *major == "0" => format!("{major}.{minor}"),
        [major, ..] => (*major).to_owned(),
        [] => unreachable!(),
    }
}

/// The version column of the README's row for `crate_cell`.
fn readme_version(crate_cell: &str) -> String {
    let readme = include_str!("../../README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| {crate_cell} |")))
        .unwrap_or_else(|| panic!("no README row for {crate_cell}"));
    row.split(" | ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn the_version_table_matches_the_workspace() {
    for (cell, dep) in [
        ("`axum`", "axum"),
        ("`tower`", "tower"),
        ("`reqwest`", "reqwest"),
        ("`reqwest-middleware`", "reqwest-middleware"),
        ("`tokio`", "tokio"),
        ("`tonic`", "tonic"),
    ] {
        assert_eq!(readme_version(cell), workspace_version(dep), "{dep}");
    }
    assert_eq!(
        readme_version("`opentelemetry`, `opentelemetry_sdk` and every `opentelemetry-*` crate"),
        workspace_version("opentelemetry")
    );
    let toml = include_str!("../../Cargo.toml");
    let msrv = toml
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.split('"').next())
        .expect("rust-version");
    assert_eq!(readme_version("Rust (MSRV)"), msrv);
}
