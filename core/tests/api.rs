//! belay-core driven as a library, without the CLI: the operations a GUI
//! or a daemon would call, on real folders and a real repository, with
//! progress going nowhere ([`Silent`]).

use std::fs;
use std::path::Path;

use belay_core::backup::BackupFrom;
use belay_core::forget::{ForgetOptions, ForgetWhat};
use belay_core::restore::RestoreResult;
use belay_core::{BackupOptions, DiffOptions, RestoreOptions, Silent};
use belay_store::Repo;
use belay_store::check::ReadData;
use belay_store::gc::GcOptions;
use belay_store::retention::Policy;
use belay_transport::Location;

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn opts(message: &str) -> BackupOptions {
    BackupOptions {
        name: Some("proj".into()),
        message: message.into(),
        ..Default::default()
    }
}

#[test]
fn backup_diff_restore_forget_gc_check_through_the_library() {
    // SAFETY: set before any thread of this test binary reads it.
    unsafe { std::env::set_var("BELAY_NO_CACHE", "1") };
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("proj");
    write(&folder, "main.py", "print('hello')\n");
    write(&folder, "lib/util.py", "X = 1\n");
    let repo = Repo::init(&work.path().join("repo")).unwrap();
    let here = Location::Dir(folder.clone());

    let first = belay_core::backup(&repo, &here, &opts("one"), &Silent).unwrap();
    assert!(first.committed());
    assert_eq!((first.files, first.source.as_str()), (2, "proj"));
    assert!(matches!(first.from, BackupFrom::Folder { .. }));
    // The result is the --json document.
    let v = serde_json::to_value(&first).unwrap();
    assert_eq!(v["snapshot"], first.snapshot.to_hex());
    assert_eq!(v["parent"], serde_json::Value::Null);
    assert_eq!(v["symlinks"], 0);

    let again = belay_core::backup(&repo, &here, &opts("same"), &Silent).unwrap();
    assert!(!again.committed(), "nothing changed, nothing saved");

    write(&folder, "main.py", "print('hello, world')\n");
    let second = belay_core::backup(&repo, &here, &opts("two"), &Silent).unwrap();
    assert_eq!(second.parent, Some(first.snapshot));

    let d = belay_core::diff(
        &repo,
        &DiffOptions {
            from: first.snapshot.to_hex(),
            to: Some(second.snapshot.to_hex()),
            stat: true,
            patch: true,
            context: 3,
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    assert_eq!(d.changes.len(), 1);
    let lines = d.changes[0].lines.as_ref().unwrap();
    assert_eq!((lines.insertions, lines.deletions), (1, 1));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v[0]["path"], "main.py");
    assert_eq!(v[0]["change"], "modified");
    assert!(
        v[0]["patch"]
            .as_str()
            .unwrap()
            .contains("+print('hello, world')")
    );

    // The folder as it is now against its latest snapshot: no changes.
    let live = belay_core::diff(
        &repo,
        &DiffOptions {
            from: format!("dir:{}", folder.display()),
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    assert!(live.changes.is_empty());
    assert!(live.live.is_some());

    let target = work.path().join("restored");
    let r = belay_core::restore(
        &repo,
        &Location::Dir(target.clone()),
        &RestoreOptions {
            spec: format!("{}:lib", first.snapshot.to_hex()),
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    assert!(matches!(r, RestoreResult::Folder(ref f) if f.files == 1));
    assert_eq!(
        fs::read_to_string(target.join("util.py")).unwrap(),
        "X = 1\n"
    );

    let f = belay_core::forget::forget(
        &repo,
        &ForgetOptions {
            what: ForgetWhat::Policy(Policy {
                last: Some(1),
                ..Default::default()
            }),
            source: None,
            dry_run: false,
        },
    )
    .unwrap();
    assert_eq!((f.kept, f.removed), (1, 1));
    assert_eq!(f.removed_ids, vec![first.snapshot]);
    let undo = belay_core::forget::undo_forget(&repo).unwrap();
    assert_eq!(undo.restored, vec![first.snapshot]);

    let gc = belay_core::maintenance::gc(
        &repo,
        &GcOptions {
            dry_run: true,
            grace: std::time::Duration::ZERO,
            now: false,
        },
        &Silent,
    )
    .unwrap();
    assert!(gc.dry_run);
    let check = belay_core::maintenance::check(&repo, ReadData::All, &Silent).unwrap();
    assert!(check.ok && check.error().is_none(), "{:?}", check.problems);
}
