//! belay as a library, without its command line: back up a folder twice
//! into a new format-2 repository, changing a file in between, and print
//! what changed between the two snapshots — what `belay backup` and
//! `belay diff` do, through the same `belay_core` calls the CLI makes.
//!
//!     cargo run --example backup_and_diff [FOLDER]
//!
//! Without FOLDER it backs up a copy of `examples/board-image`. Everything
//! it writes is in a temporary folder, removed at the end.

use std::fs;
use std::path::{Path, PathBuf};

use belay_core::{BackupOptions, DiffOptions, Silent};
use belay_store::Repo;
use belay_transport::Location;

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let given = std::env::args().nth(1).map(PathBuf::from);
    let folder = work.path().join("folder");
    let original =
        given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/board-image"));
    copy_tree(&original, &folder)?;

    let repo = Repo::init(&work.path().join("repo"))?;
    let opts = |message: &str| BackupOptions {
        name: Some("example".into()),
        message: message.into(),
        ..Default::default()
    };
    let location = Location::Dir(folder.clone());
    let first = belay_core::backup(&repo, &location, &opts("as found"), &Silent)?;
    println!(
        "snapshot {}: {} files, {} bytes added",
        first.snapshot.short(),
        first.files,
        first.bytes_added
    );

    // A change, as a user would make it.
    fs::write(folder.join("NOTES.txt"), "changed by the example\n")?;
    let second = belay_core::backup(&repo, &location, &opts("with notes"), &Silent)?;
    println!(
        "snapshot {}: {} files read, {} bytes added",
        second.snapshot.short(),
        second.files_read,
        second.bytes_added
    );

    let diff = DiffOptions {
        from: first.snapshot.to_hex(),
        to: Some(second.snapshot.to_hex()),
        ..Default::default()
    };
    let changes = belay_core::diff(&repo, &diff, &Silent)?;
    for e in &changes.changes {
        println!(
            "{}\t{}",
            e.change.change.letter(),
            belay_store::path::display(&e.change.path)
        );
    }
    // The same result, as `belay diff --json` prints it.
    println!("{}", serde_json::to_string(&changes)?);
    Ok(())
}
