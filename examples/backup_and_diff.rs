//! belay as a library, without its command line: back up a folder twice
//! into a new format-2 repository, changing a file in between, and print
//! what changed between the two snapshots — what `belay backup` and
//! `belay diff --name-status` do, through the same calls.
//!
//!     cargo run --example backup_and_diff [FOLDER]
//!
//! Without FOLDER it backs up a copy of `examples/board-image`. Everything
//! it writes is in a temporary folder, removed at the end.

use std::fs;
use std::path::{Path, PathBuf};

use belay_store::Repo;
use belay_store::backup::{BackupOptions, NoProgress, backup};
use belay_store::diff::{PathFilter, diff_trees};
use belay_transport::dir::DirSource;

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
    let opts = |time_ns: i64, message: &str| BackupOptions {
        name: "example".into(),
        message: message.into(),
        time_ns,
        ..Default::default()
    };
    let source = DirSource::new(&folder, vec![], false)?;
    let first = backup(&repo, &source, &opts(1, "as found"), &NoProgress)?;
    println!(
        "snapshot {}: {} files, {} bytes added",
        first.snapshot.short(),
        first.summary.files,
        first.summary.bytes_added
    );

    // A change, as a user would make it.
    fs::write(folder.join("NOTES.txt"), "changed by the example\n")?;
    let source = DirSource::new(&folder, vec![], false)?;
    let second = backup(&repo, &source, &opts(2, "with notes"), &NoProgress)?;
    println!(
        "snapshot {}: {} files read, {} bytes added",
        second.snapshot.short(),
        second.summary.files_read,
        second.summary.bytes_added
    );

    let old = repo.read_snapshot(&first.snapshot)?.tree;
    let new = repo.read_snapshot(&second.snapshot)?.tree;
    for c in diff_trees(&repo, Some(&old), Some(&new), &PathFilter::default())? {
        println!(
            "{}\t{}",
            c.change.letter(),
            belay_store::path::display(&c.path)
        );
    }
    Ok(())
}
