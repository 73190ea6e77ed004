//! The crates depend one way (README "Layout"): `belay-source` (the
//! Source/Sink interface) depends on no other belay crate; the store and
//! the transport each depend on it and never on each other; `belay-core`
//! (every operation, as a library) sits on the three of them; the CLI on
//! the core; only the CLI knows the terminal. `belay-s3` (the S3 storage)
//! may depend on the store and the source, never on the transport.
//! Breaking this fails here, not in review.

use std::collections::BTreeMap;
use std::process::Command;

/// Every workspace package's normal (non-dev) dependencies, by name.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_one_way_and_only_the_cli_knows_the_terminal() {
    let deps = dependencies();
    let of = |name: &str| {
        deps.get(name)
            .unwrap_or_else(|| panic!("no package {name}"))
            .clone()
    };
    let belay = |d: &Vec<String>| -> Vec<String> {
        d.iter()
            .filter(|n| n.starts_with("belay-"))
            .cloned()
            .collect()
    };
    assert_eq!(belay(&of("belay-source")), Vec::<String>::new());
    assert_eq!(belay(&of("belay-store")), vec!["belay-source".to_string()]);
    assert_eq!(
        belay(&of("belay-transport")),
        vec!["belay-source".to_string()],
        "the transport knows nothing of the repository"
    );
    let mut core = belay(&of("belay-core"));
    core.sort();
    assert_eq!(
        core,
        ["belay-source", "belay-store", "belay-transport"],
        "the library sits on the store and the transport, never on the CLI"
    );
    assert!(
        belay(&of("belay-cli")).contains(&"belay-core".to_string()),
        "the CLI calls the library"
    );
    let terminal = [
        "clap",
        "indicatif",
        "anstream",
        "anstyle",
        "ctrlc",
        "anyhow",
    ];
    // The object-storage backend implements the store's Storage trait: it
    // may know the store (and the source), never the transport.
    let s3 = belay(&of("belay-s3"));
    assert!(
        s3.iter().all(|d| d == "belay-store" || d == "belay-source"),
        "belay-s3 depends on {s3:?}: only belay-store / belay-source allowed"
    );
    for lib in [
        "belay-source",
        "belay-store",
        "belay-transport",
        "belay-core",
        "belay-s3",
    ] {
        for d in of(lib) {
            assert!(
                !terminal.contains(&d.as_str()),
                "{lib} depends on {d}: only the CLI talks to the terminal"
            );
        }
    }
}
