//! Retention (forget), garbage collection, check and stats: policy tables,
//! end-to-end through the binary, concurrency with paused processes,
//! kill -9 crash trials and corruption detection.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use belay_store::ObjectId;
use belay_store::retention::{Candidate, Policy, Within, apply};
use belay_suite::cli::{belay, belay_bin, belay_json};
use belay_suite::fsutil::{assert_same_tree, noise, set_mtime};
use jiff::Timestamp;
use jiff::tz::TimeZone;

// ---------------------------------------------------------------------------
// Retention policy tables (restic's documented semantics), a synthetic year
// of hourly snapshots: 2025-01-01T00:00Z .. 2025-12-31T23:00Z, id = index.

const HOURS: i64 = 8760;
const YEAR_START: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

fn hourly_year() -> Vec<Candidate<i64>> {
    (0..HOURS)
        .map(|i| Candidate {
            id: i,
            time_ns: (YEAR_START + i * 3600) * 1_000_000_000,
            tags: vec![],
        })
        .collect()
}

/// Index of the snapshot at a UTC date and hour of 2025.
fn at(month: i8, day: i8, hour: i8) -> i64 {
    let t = jiff::civil::date(2025, month, day)
        .at(hour, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    (t - YEAR_START) / 3600
}

fn kept(policy: &Policy, snaps: &[Candidate<i64>], tz: &TimeZone) -> BTreeSet<i64> {
    apply(policy, snaps, tz)
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.id)
        .collect()
}

fn reasons(policy: &Policy, snaps: &[Candidate<i64>], id: i64) -> Vec<String> {
    apply(policy, snaps, &TimeZone::UTC)
        .into_iter()
        .find(|d| d.id == id)
        .unwrap()
        .reasons
}

#[test]
fn policy_keep_last_and_hourly() {
    let snaps = hourly_year();
    let p = Policy {
        last: Some(5),
        ..Default::default()
    };
    assert_eq!(
        kept(&p, &snaps, &TimeZone::UTC),
        (HOURS - 5..HOURS).collect()
    );
    let p = Policy {
        hourly: Some(30),
        ..Default::default()
    };
    assert_eq!(
        kept(&p, &snaps, &TimeZone::UTC),
        (HOURS - 30..HOURS).collect()
    );
}

#[test]
fn policy_keep_daily_weekly_monthly_take_the_newest_of_each_bucket() {
    let snaps = hourly_year();
    let utc = TimeZone::UTC;
    let daily = Policy {
        daily: Some(7),
        ..Default::default()
    };
    let want: BTreeSet<i64> = (25..=31).map(|d| at(12, d, 23)).collect();
    assert_eq!(kept(&daily, &snaps, &utc), want);

    // 2025-12-31 is a Wednesday: ISO weeks end on Sundays Dec 28, 21, 14.
    let weekly = Policy {
        weekly: Some(4),
        ..Default::default()
    };
    let want: BTreeSet<i64> = [
        at(12, 31, 23),
        at(12, 28, 23),
        at(12, 21, 23),
        at(12, 14, 23),
    ]
    .into();
    assert_eq!(kept(&weekly, &snaps, &utc), want);

    let monthly = Policy {
        monthly: Some(3),
        ..Default::default()
    };
    let want: BTreeSet<i64> = [at(12, 31, 23), at(11, 30, 23), at(10, 31, 23)].into();
    assert_eq!(kept(&monthly, &snaps, &utc), want);

    // Combined: the union, each snapshot naming every rule that keeps it.
    let combined = Policy {
        daily: Some(7),
        weekly: Some(4),
        monthly: Some(12),
        ..Default::default()
    };
    let month_ends = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30];
    let mut want: BTreeSet<i64> = (25..=31).map(|d| at(12, d, 23)).collect();
    want.insert(at(12, 21, 23));
    want.insert(at(12, 14, 23));
    for (m, d) in month_ends.iter().enumerate() {
        want.insert(at(m as i8 + 1, *d, 23));
    }
    assert_eq!(want.len(), 20);
    assert_eq!(kept(&combined, &snaps, &utc), want);
    assert_eq!(
        reasons(&combined, &snaps, at(12, 31, 23)),
        ["daily snapshot", "weekly snapshot", "monthly snapshot"]
    );
    assert_eq!(
        reasons(&combined, &snaps, at(12, 28, 23)),
        ["daily snapshot", "weekly snapshot"]
    );
    assert!(reasons(&combined, &snaps, at(12, 28, 22)).is_empty());
}

#[test]
fn policy_yearly_with_room_to_spare_keeps_the_oldest_too() {
    // restic 0.17: a calendar rule that finds fewer buckets than it may keep
    // also keeps the group's oldest snapshot.
    let snaps = hourly_year();
    let p = Policy {
        yearly: Some(3),
        ..Default::default()
    };
    assert_eq!(kept(&p, &snaps, &TimeZone::UTC), [0, HOURS - 1].into());
    assert_eq!(reasons(&p, &snaps, 0), ["oldest yearly snapshot"]);
    let p = Policy {
        monthly: Some(24),
        ..Default::default()
    };
    assert_eq!(kept(&p, &snaps, &TimeZone::UTC).len(), 13);
    // keep-last never does that.
    let p = Policy {
        last: Some(100_000),
        ..Default::default()
    };
    assert_eq!(kept(&p, &snaps, &TimeZone::UTC).len(), HOURS as usize);
}

#[test]
fn policy_keep_within_counts_from_the_newest_snapshot_not_now() {
    let snaps = hourly_year();
    let p = Policy {
        within: Some(Within::parse("2d").unwrap()),
        ..Default::default()
    };
    // Newer than Dec 29 23:00 (strictly): Dec 30 00:00 .. Dec 31 23:00.
    assert_eq!(
        kept(&p, &snaps, &TimeZone::UTC),
        (at(12, 30, 0)..HOURS).collect()
    );
    let p = Policy {
        within: Some(Within::parse("1mo").unwrap()),
        ..Default::default()
    };
    assert_eq!(kept(&p, &snaps, &TimeZone::UTC).len(), 31 * 24);
    let p = Policy {
        within: Some(Within::parse("1y").unwrap()),
        ..Default::default()
    };
    // 2024-12-31T23:00 is before the first snapshot: all are within.
    assert_eq!(kept(&p, &snaps, &TimeZone::UTC).len(), HOURS as usize);
    assert_eq!(reasons(&p, &snaps, 0), ["within 1y"]);
}

#[test]
fn policy_buckets_follow_the_time_zone() {
    let snaps = hourly_year();
    let plus2 = TimeZone::fixed(jiff::tz::offset(2));
    let p = Policy {
        daily: Some(2),
        ..Default::default()
    };
    // Dec 31 23:00Z is Jan 1 01:00 at +02:00, alone in its local day; the
    // local Dec 31 ends at 21:00Z.
    assert_eq!(
        kept(&p, &snaps, &plus2),
        [at(12, 31, 21), at(12, 31, 23)].into()
    );
}

#[test]
fn policy_tags_and_sparse_days() {
    let mut snaps = hourly_year();
    snaps[at(3, 14, 9) as usize].tags = vec!["field-test".into()];
    snaps[at(6, 1, 0) as usize].tags = vec!["v1.0".into()];
    let p = Policy {
        last: Some(1),
        tags: vec!["v*".into()],
        ..Default::default()
    };
    assert_eq!(
        kept(&p, &snaps, &TimeZone::UTC),
        [at(3, 14, 9), at(6, 1, 0), HOURS - 1].into()
    );
    assert_eq!(reasons(&p, &snaps, at(6, 1, 0)), ["keep-tag v1.0"]);
    assert_eq!(reasons(&p, &snaps, at(3, 14, 9)), ["tagged field-test"]);

    // restic's documentation example: a1 May 1 8:00, a2 May 2 8:00, a3 May 2
    // 11:00, a4 May 4 9:00, a5 May 5 10:00; --keep-daily 4 keeps a1 a3 a4 a5.
    let t = |d: i8, h: i8| {
        jiff::civil::date(2025, 5, d)
            .at(h, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_nanosecond() as i64
    };
    let sparse: Vec<Candidate<i64>> = [(1, 1, 8), (2, 2, 8), (3, 2, 11), (4, 4, 9), (5, 5, 10)]
        .iter()
        .map(|&(id, d, h)| Candidate {
            id,
            time_ns: t(d, h),
            tags: vec![],
        })
        .collect();
    let p = Policy {
        daily: Some(4),
        ..Default::default()
    };
    assert_eq!(kept(&p, &sparse, &TimeZone::UTC), [1, 3, 4, 5].into());
    assert!(Policy::default().validate().is_err());
    assert!(
        Policy {
            last: Some(0),
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}

/// An independent statement of restic's bucket rules: group the snapshots by
/// bucket, take the N most recent buckets, keep the newest of each.
fn reference_keep(
    snaps: &[Candidate<i64>],
    n: u32,
    key: &dyn Fn(&jiff::Zoned) -> i64,
) -> BTreeSet<i64> {
    let mut by_bucket: BTreeMap<i64, (i64, i64)> = BTreeMap::new(); // bucket -> (time, id)
    for s in snaps {
        let z = Timestamp::from_nanosecond(s.time_ns as i128)
            .unwrap()
            .to_zoned(TimeZone::UTC);
        let e = by_bucket.entry(key(&z)).or_insert((s.time_ns, s.id));
        if (s.time_ns, s.id) > *e {
            *e = (s.time_ns, s.id);
        }
    }
    by_bucket
        .values()
        .rev()
        .take(n as usize)
        .map(|&(_, id)| id)
        .collect()
}

proptest::proptest! {
    #[test]
    fn policy_matches_an_independent_statement_of_the_bucket_rules(
        times in proptest::collection::vec(0i64..3 * 365 * 24 * 3600, 1..60),
        n in 1u32..8,
        rule in 0usize..5,
    ) {
        let snaps: Vec<Candidate<i64>> = times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: i as i64,
                time_ns: (YEAR_START + t) * 1_000_000_000,
                tags: vec![],
            })
            .collect();
        let keys: [&dyn Fn(&jiff::Zoned) -> i64; 5] = [
            &|z| z.timestamp().as_second() / 3600,
            &|z| z.year() as i64 * 10_000 + z.month() as i64 * 100 + z.day() as i64,
            &|z| {
                let w = z.date().iso_week_date();
                w.year() as i64 * 100 + w.week() as i64
            },
            &|z| z.year() as i64 * 100 + z.month() as i64,
            &|z| z.year() as i64,
        ];
        let mut p = Policy::default();
        match rule {
            0 => p.hourly = Some(n),
            1 => p.daily = Some(n),
            2 => p.weekly = Some(n),
            3 => p.monthly = Some(n),
            _ => p.yearly = Some(n),
        }
        let mut want = reference_keep(&snaps, n, keys[rule]);
        let buckets = reference_keep(&snaps, u32::MAX, keys[rule]).len();
        if buckets < n as usize {
            // restic 0.17: room to spare keeps the oldest snapshot too.
            let oldest = snaps.iter().min_by_key(|s| (s.time_ns, s.id)).unwrap().id;
            want.insert(oldest);
        }
        proptest::prop_assert_eq!(kept(&p, &snaps, &TimeZone::UTC), want);
        // keep-last is the N newest.
        let mut by_time: Vec<&Candidate<i64>> = snaps.iter().collect();
        by_time.sort_by_key(|s| std::cmp::Reverse((s.time_ns, s.id)));
        let want_last: BTreeSet<i64> = by_time.iter().take(n as usize).map(|s| s.id).collect();
        let last = Policy { last: Some(n), ..Default::default() };
        proptest::prop_assert_eq!(kept(&last, &snaps, &TimeZone::UTC), want_last);
    }
}

#[test]
fn cache_is_emptied_when_the_gc_generation_changes() {
    use belay_store::backup::KnownFiles;
    let dir = tempfile::tempdir().unwrap();
    let c = belay_store::cache::Cache::open_at(&dir.path().join("c.sqlite")).unwrap();
    c.sync_generation(0).unwrap();
    c.record(&[1; 32], 5, &[ObjectId([2; 32])]);
    c.sync_generation(0).unwrap();
    assert!(c.lookup(&[1; 32], 5).is_some());
    c.sync_generation(1).unwrap();
    assert!(c.lookup(&[1; 32], 5).is_none());
}

// ---------------------------------------------------------------------------
// Helpers for the end-to-end tests.

fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo).arg("init").assert().success();
    repo
}

/// A repository of format 1 (loose objects) or 2 (packs).
fn init_format(dir: &Path, format: &str) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo)
        .args(["init", "--format", format])
        .assert()
        .success();
    repo
}

fn backup(repo: &Path, src: &Path, name: &str) -> String {
    // --allow-empty: the tests count snapshots of unchanged trees too.
    let v = belay_json(
        repo,
        &[
            "backup",
            src.to_str().unwrap(),
            "--name",
            name,
            "--allow-empty",
        ],
    );
    v["snapshot"].as_str().unwrap().to_string()
}

/// Every object (loose or packed), by id, with its envelope's size.
fn objects(repo: &Path) -> BTreeMap<String, u64> {
    belay_suite::objects::places(repo)
        .into_iter()
        .map(|p| (p.hex(), p.len))
        .collect()
}

fn check_clean(repo: &Path, read_data: bool) {
    let mut c = belay(repo);
    c.arg("check");
    if read_data {
        c.arg("--read-data");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Copy a repository and give the copy its own id, so the local cache
/// (keyed by repository id) of one copy is never taken for another's.
fn copy_repo(from: &Path, to: &Path) {
    copy_dir(from, to);
    let cfg = to.join("config");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    let id = blake3::hash(to.to_string_lossy().as_bytes())
        .to_hex()
        .to_string();
    v["id"] = serde_json::Value::String(id);
    fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn write_file(path: &Path, data: &[u8], mtime_s: i64) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
    set_mtime(path, mtime_s * 1_000_000_000);
}

/// Hex ids of every object a snapshot reaches (itself included).
fn reachable(repo: &Path, id: &str) -> BTreeSet<String> {
    let r = belay_store::Repo::open(repo).unwrap();
    let sid = ObjectId::from_hex(id).unwrap();
    let snap = r.read_snapshot(&sid).unwrap();
    let mut out: BTreeSet<String> = [id.to_string(), snap.tree.to_hex()].into();
    belay_store::walk::visit(&r, &snap.tree, b"", &mut |_, e| {
        match &e.node {
            belay_store::tree::Node::File { chunks, .. } => {
                out.extend(chunks.iter().map(|c| c.to_hex()))
            }
            belay_store::tree::Node::Dir { tree } => {
                out.insert(tree.to_hex());
            }
            belay_store::tree::Node::Symlink { .. } => {}
        }
        Ok(())
    })
    .unwrap();
    out
}

fn tag(repo: &Path, name: &str, id: &str) {
    fs::create_dir_all(repo.join("refs/tags")).unwrap();
    fs::write(repo.join("refs/tags").join(name), format!("{id}\n")).unwrap();
}

// ---------------------------------------------------------------------------

#[test]
fn forget_then_gc_frees_exactly_what_removed_snapshots_held_and_kept_ones_restore() {
    for format in ["1", "2"] {
        forget_then_gc_frees_exactly(format);
    }
}

fn forget_then_gc_frees_exactly(format: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init_format(tmp.path(), format);
    let src = tmp.path().join("board");
    write_file(&src.join("main.py"), b"print('base')\n", 1_000);
    write_file(&src.join("lib/big.bin"), &noise(200_000, 1), 1_000);
    write_file(&src.join("lib/util.py"), b"x = 1\n", 1_000);
    let base = backup(&repo, &src, "board");
    tag(&repo, "base", &base);
    let copies = tmp.path().join("copies");
    fs::create_dir_all(&copies).unwrap();
    let mut snaps = vec![base.clone()];
    copy_dir(&src, &copies.join("0"));
    for i in 1..=5u64 {
        // Ephemeral content only this snapshot has, and a lasting edit.
        let _ = fs::remove_dir_all(src.join("tmp"));
        write_file(
            &src.join(format!("tmp/v{i}.bin")),
            &noise(30_000 + i as usize * 1000, 100 + i),
            2_000 + i as i64,
        );
        write_file(
            &src.join("main.py"),
            format!("print('v{i}')\n").as_bytes(),
            2_000 + i as i64,
        );
        snaps.push(backup(&repo, &src, "board"));
        copy_dir(&src, &copies.join(i.to_string()));
    }
    // Keep the last 2 (and the tagged base); 1..=3 go. What only they
    // reach is what gc must free.
    let removed: Vec<&String> = snaps[1..=3].iter().collect();
    let mut only_removed: BTreeSet<String> = BTreeSet::new();
    let mut kept_objs: BTreeSet<String> = BTreeSet::new();
    for id in &snaps {
        let r = reachable(&repo, id);
        if removed.contains(&id) {
            only_removed.extend(r);
        } else {
            kept_objs.extend(r);
        }
    }
    let before = objects(&repo);
    let only_removed: Vec<String> = only_removed.difference(&kept_objs).cloned().collect();
    let added: u64 = only_removed.iter().map(|o| before[o]).sum();
    assert!(only_removed.len() >= 3 * 4, "{only_removed:?}");

    let dry = belay_json(&repo, &["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["removed"], 3);
    assert_eq!(dry["kept"], 3);
    let decisions = dry["sources"][0]["snapshots"].as_array().unwrap();
    let base_row = decisions.iter().find(|d| d["id"] == base.as_str()).unwrap();
    assert_eq!(base_row["action"], "keep");
    assert_eq!(base_row["reasons"][0], "tagged base");
    assert!(
        repo.join("snapshots").join(&snaps[1]).exists(),
        "dry run changed nothing"
    );

    let f = belay_json(&repo, &["forget", "--keep-last", "2"]);
    assert_eq!(f["removed"], 3);
    let log = belay_json(&repo, &["log"]);
    assert_eq!(log.as_array().unwrap().len(), 3);

    // First gc condemns, deletes nothing; the grace period is measured from it.
    let g1 = belay_json(&repo, &["gc"]);
    assert_eq!(g1["deleted_objects"], 0);
    assert!(g1["condemned_objects"].as_u64().unwrap() > 0);
    assert_eq!(objects(&repo), before);
    let g2 = belay_json(&repo, &["gc"]);
    assert_eq!(g2["deleted_objects"], 0, "grace period of 24h not over");
    let g3 = belay_json(&repo, &["gc", "--grace", "0"]);
    let v1 = format == "1";
    if v1 {
        assert_eq!(g3["deleted_objects"], g1["condemned_objects"]);
    }
    let after = objects(&repo);
    let gone: Vec<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(
        gone, only_removed,
        "exactly the objects only removed snapshots reached"
    );
    // One file per object: the repository shrinks by exactly what they
    // added (with packs, gc also rewrites what stays into new packs).
    if v1 {
        let freed: u64 = before.values().sum::<u64>() - after.values().sum::<u64>();
        assert_eq!(
            freed, added,
            "shrinks by exactly what the removed snapshots added"
        );
        assert_eq!(g3["deleted_bytes"].as_u64().unwrap(), added);
    } else {
        assert!(g3["deleted_bytes"].as_u64().unwrap() >= added, "{g3}");
    }

    check_clean(&repo, true);
    for (i, id) in snaps.iter().enumerate() {
        if removed.contains(&id) {
            continue;
        }
        let to = tmp.path().join(format!("restored-{i}"));
        belay(&repo)
            .args(["restore", id, "--to"])
            .arg(&to)
            .assert()
            .success();
        assert_same_tree(&copies.join(i.to_string()), &to);
    }
    // The next backup continues from the kept head.
    write_file(&src.join("new.py"), b"new\n", 3_000);
    let v = belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "board"]);
    assert_eq!(v["parent"], snaps[5].as_str());
    check_clean(&repo, false);
}

#[test]
fn undo_forget_brings_back_snapshots_and_heads_until_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("proj");
    let mut ids = vec![];
    for i in 0..3 {
        write_file(&src.join("a.txt"), format!("{i}").as_bytes(), 100 + i);
        ids.push(backup(&repo, &src, "proj"));
    }
    tag(&repo, "first", &ids[0]);
    // Only tags kept: the head's snapshot goes, so the head moves to the
    // newest kept snapshot.
    let f = belay_json(&repo, &["forget", "--keep-tag", "first"]);
    assert_eq!(f["removed"], 2);
    assert_eq!(f["sources"][0]["head_after"], ids[0].as_str());
    assert_eq!(
        fs::read_to_string(repo.join("refs/heads/proj"))
            .unwrap()
            .trim(),
        ids[0]
    );
    assert!(repo.join("trash").join(&ids[2]).exists());
    belay(&repo)
        .arg("undo-forget")
        .assert()
        .success()
        .stdout(predicates::str::contains("brought back 2 snapshots"));
    assert_eq!(
        fs::read_to_string(repo.join("refs/heads/proj"))
            .unwrap()
            .trim(),
        ids[2]
    );
    assert_eq!(belay_json(&repo, &["log"]).as_array().unwrap().len(), 3);
    // A second undo has nothing to do.
    belay(&repo)
        .args(["forget", "--undo"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("nothing to undo"));
    // A gc within the grace period keeps the last forget's trash: undo
    // still works (the first gc used to empty it silently).
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    let g = belay_json(&repo, &["gc"]);
    // (the tagged first snapshot is kept: one is removed)
    assert_eq!(g["trash_kept"], 1, "{g}");
    assert_eq!(g["trash_emptied"], 0, "{g}");
    belay(&repo)
        .arg("undo-forget")
        .assert()
        .success()
        .stdout(predicates::str::contains("brought back 1 snapshots"));
    belay(&repo).arg("check").assert().success();
    // Once the forget is older than the grace period, gc empties the
    // trash: undo is refused.
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    let g = belay_json(&repo, &["gc", "--grace", "0"]);
    assert_eq!(g["trash_emptied"], 1, "{g}");
    belay(&repo).arg("undo-forget").assert().failure();
    // An empty policy is refused, whatever else is given.
    belay(&repo)
        .args(["forget", "--source", "proj"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no retention policy"));
    belay(&repo)
        .args(["forget", "--keep-daily", "soon"])
        .assert()
        .code(1);
    // --source limits the policy to one source.
    let other = tmp.path().join("other");
    write_file(&other.join("b"), b"b", 5);
    backup(&repo, &other, "other");
    write_file(&other.join("b"), b"bb", 6);
    backup(&repo, &other, "other");
    let f = belay_json(
        &repo,
        &[
            "forget",
            "--keep-last",
            "1",
            "--source",
            "other",
            "--dry-run",
        ],
    );
    assert_eq!(f["sources"].as_array().unwrap().len(), 1);
    assert_eq!(f["removed"], 1);
}

#[test]
fn gc_now_is_refused_while_a_backup_session_is_active_and_stale_sessions_are_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("s");
    write_file(&src.join("a"), &noise(5000, 1), 1);
    backup(&repo, &src, "s");
    write_file(&src.join("a"), &noise(5000, 2), 2);
    backup(&repo, &src, "s");
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    // A session of a live process (this test) on this host.
    let host = belay_store::session::hostname();
    let live = format!(
        "{{\"kind\":\"backup\",\"host\":\"{host}\",\"pid\":{},\"started\":\"x\"}}",
        std::process::id()
    );
    fs::create_dir_all(repo.join("sessions")).unwrap();
    fs::write(repo.join("sessions/live.json"), live).unwrap();
    let g = belay_json(&repo, &["gc", "--now"]);
    assert_eq!(g["deleted_objects"], 0);
    assert_eq!(g["postponed_by"].as_array().unwrap().len(), 1);
    // Its process is gone: stale, removed, and --now deletes.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    // A backup's session file is empty: its name says host and pid.
    fs::remove_file(repo.join("sessions/live.json")).unwrap();
    let host_part: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stale_name = format!("{host_part}-{dead}-0123456789ab.json");
    fs::write(repo.join("sessions").join(&stale_name), b"").unwrap();
    let g = belay_json(&repo, &["gc", "--now"]);
    assert_eq!(g["stale_sessions_removed"], 1);
    assert!(g["deleted_objects"].as_u64().unwrap() >= 3);
    assert!(!repo.join("sessions").join(&stale_name).exists());
    check_clean(&repo, true);
    // Every gc bumps the generation.
    let g2 = belay_json(&repo, &["gc", "--dry-run"]);
    assert_eq!(g2["generation"], g["generation"]);
    let g3 = belay_json(&repo, &["gc"]);
    assert_eq!(
        g3["generation"].as_u64().unwrap(),
        g["generation"].as_u64().unwrap() + 1
    );
}

// ---------------------------------------------------------------------------
// Concurrency: a backup and gc interleaved at pause points.

fn spawn_paused(repo: &Path, args: &[&str], points: &str, pause_dir: &Path) -> Child {
    Command::new(belay_bin())
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("BELAY_TEST_PAUSE_AT", points)
        .env("BELAY_TEST_PAUSE_DIR", pause_dir)
        .env_remove("BELAY_REPO")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_reached(pause_dir: &Path, point: &str, child: &mut Child) -> bool {
    let f = pause_dir.join(format!("{point}.reached"));
    loop {
        if f.exists() {
            return true;
        }
        if let Some(_st) = child.try_wait().unwrap() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn release(pause_dir: &Path, point: &str) {
    fs::write(pause_dir.join(format!("{point}.go")), b"").unwrap();
}

/// A repository whose garbage includes content the next backup will reuse:
/// `src` holds content that only forgotten (condemned) snapshots have.
fn concurrency_template(tmp: &Path) -> (PathBuf, PathBuf) {
    let repo = init(tmp);
    let src = tmp.join("src");
    for i in 0..6 {
        write_file(&src.join(format!("f{i}.bin")), &noise(20_000, i), 10);
    }
    write_file(&src.join("sub/deep.py"), b"deep\n", 10);
    backup(&repo, &src, "src");
    let keep = tmp.join("keep");
    write_file(&keep.join("k"), b"keep me\n", 10);
    backup(&repo, &keep, "src");
    // Only the second (unrelated) snapshot is kept; the first one's objects
    // are condemned by a gc, and the source folder still has them.
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    let g = belay_json(&repo, &["gc"]);
    assert!(g["condemned_bytes"].as_u64().unwrap() >= 100_000, "{g}");
    (repo, src)
}

#[test]
fn backup_and_gc_interleaved_never_commit_a_snapshot_with_deleted_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, src) = concurrency_template(tmp.path());
    let backup_points = [
        "backup-started",
        "backup-stored",
        "backup-before-commit",
        "backup-committing",
    ];
    let gc_points = ["gc-generation-bumped", "gc-marked", "gc-deleting"];
    let mut trial = 0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    // (a) The backup pauses; gc --grace 0 (then gc --now) runs to the end.
    // (b) gc pauses; a backup runs as far as it can; gc resumes.
    for bp in backup_points {
        for gc_args in [&["gc", "--grace", "0"][..], &["gc", "--now"][..]] {
            trial += 1;
            let repo = tmp.path().join(format!("a{trial}"));
            copy_repo(&template, &repo);
            let pause = tmp.path().join(format!("pa{trial}"));
            fs::create_dir_all(&pause).unwrap();
            let mut b = spawn_paused(
                &repo,
                &["--json", "backup", src.to_str().unwrap(), "--name", "src"],
                bp,
                &pause,
            );
            assert!(wait_reached(&pause, bp, &mut b), "backup reached {bp}");
            let g = belay_json(&repo, gc_args);
            release(&pause, bp);
            let out = b.wait_with_output().unwrap();
            let key = format!(
                "backup paused at {bp}, {}: backup {} (gc deleted {})",
                gc_args.join(" "),
                if out.status.success() { "ok" } else { "failed" },
                g["deleted_objects"]
            );
            *outcomes.entry(key).or_default() += 1;
            assert!(
                out.status.success(),
                "a gc that saw the session must not break the backup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            check_clean(&repo, true);
        }
    }
    for gp in gc_points {
        for gc_args in [&["gc", "--grace", "0"][..], &["gc", "--now"][..]] {
            trial += 1;
            let repo = tmp.path().join(format!("b{trial}"));
            copy_repo(&template, &repo);
            let pause = tmp.path().join(format!("pb{trial}"));
            fs::create_dir_all(&pause).unwrap();
            let mut args = vec!["--json"];
            args.extend_from_slice(gc_args);
            let mut g = spawn_paused(&repo, &args, gp, &pause);
            let reached = wait_reached(&pause, gp, &mut g);
            // The backup runs while gc is paused (it may block waiting for
            // the deleting gc, so run it in the background).
            let mut b = Command::new(belay_bin())
                .arg("-r")
                .arg(&repo)
                .args(["--json", "backup", src.to_str().unwrap(), "--name", "src"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Give the backup time to get as far as it can, then resume gc.
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(1500) {
                if b.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if reached {
                release(&pause, gp);
            }
            let gout = g.wait_with_output().unwrap();
            assert!(
                gout.status.success(),
                "gc: {}",
                String::from_utf8_lossy(&gout.stderr)
            );
            let bout = b.wait_with_output().unwrap();
            let ok = bout.status.success();
            let key = format!(
                "gc paused at {gp}{}, {}: backup {}",
                if reached { "" } else { " (not reached)" },
                gc_args.join(" "),
                if ok { "ok" } else { "refused to commit" }
            );
            *outcomes.entry(key).or_default() += 1;
            if !ok {
                let err = String::from_utf8_lossy(&bout.stderr);
                assert!(err.contains("run the backup again"), "{err}");
            }
            // Whatever happened, nothing committed references a deleted
            // object, and a rerun completes.
            check_clean(&repo, true);
            backup(&repo, &src, "src");
            check_clean(&repo, true);
        }
    }
    eprintln!("{outcomes:#?}");
}

#[test]
fn overdue_condemned_objects_are_deleted_even_while_a_backup_runs_and_the_backup_rechecks() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, src) = concurrency_template(tmp.path());
    // Paused before its check, and between its check and its marker.
    for point in ["backup-before-commit", "backup-committing"] {
        let repo = tmp.path().join(point);
        copy_repo(&template, &repo);
        // The condemnation happened two hours ago (by the share's clock).
        for e in fs::read_dir(repo.join("gc/condemned")).unwrap() {
            let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
            fs::File::options()
                .write(true)
                .open(e.unwrap().path())
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        // A backup reusing those condemned objects is paused.
        let pause = tmp.path().join(format!("pause-{point}"));
        fs::create_dir_all(&pause).unwrap();
        let mut b = spawn_paused(
            &repo,
            &["--json", "backup", src.to_str().unwrap(), "--name", "src"],
            point,
            &pause,
        );
        assert!(wait_reached(&pause, point, &mut b));
        // Within grace + 1 h: postponed.
        let g = belay_json(&repo, &["gc", "--grace", "1h30m"]);
        assert_eq!(g["deleted_objects"], 0);
        assert_eq!(g["postponed_by"].as_array().unwrap().len(), 1);
        // Overdue: deleted although the backup runs.
        let g = belay_json(&repo, &["gc", "--grace", "30m"]);
        assert!(g["deleted_bytes"].as_u64().unwrap() >= 100_000, "{g}");
        assert_eq!(g["deleted_while_backups_ran"], true);
        release(&pause, point);
        let out = b.wait_with_output().unwrap();
        // The backup reused deleted objects: it notices and leaves no
        // snapshot behind.
        assert!(!out.status.success(), "{point}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("run the backup again"), "{err}");
        assert_eq!(belay_json(&repo, &["log"]).as_array().unwrap().len(), 1);
        check_clean(&repo, true);
        backup(&repo, &src, "src");
        check_clean(&repo, true);
    }
}

#[test]
fn a_cache_filled_before_a_gc_is_not_trusted_blindly() {
    // The local cache is opened before a backup announces its session; a gc
    // finishing in between deletes objects the cache still calls known. The
    // backup notices the generation changed and re-checks before committing.
    use belay_store::backup::{BackupOptions, NoProgress, backup_with};
    use belay_store::cache::Cache;
    use belay_transport::dir::DirSource;
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = init(tmp.path());
    let src = tmp.path().join("src");
    write_file(&src.join("a.bin"), &noise(30_000, 42), 1);
    let repo = belay_store::Repo::open(&repo_path).unwrap();
    let cache = Cache::open_at(&tmp.path().join("cache/c.sqlite")).unwrap();
    cache
        .sync_generation(belay_store::session::generation(&repo).unwrap())
        .unwrap();
    let opts = |t: i64| BackupOptions {
        name: "src".into(),
        time_ns: t,
        ..Default::default()
    };
    let source = DirSource::new(&src, vec![], false).unwrap();
    backup_with(&repo, &source, &opts(1), Some(&cache), &NoProgress).unwrap();
    // a.bin goes away, its snapshot is forgotten and its chunks deleted.
    fs::remove_file(src.join("a.bin")).unwrap();
    write_file(&src.join("b.txt"), b"b", 2);
    backup(&repo_path, &src, "src");
    belay_json(&repo_path, &["forget", "--keep-last", "1"]);
    belay_json(&repo_path, &["gc", "--now"]);
    // a.bin comes back; the stale cache says its chunks are known.
    write_file(&src.join("a.bin"), &noise(30_000, 42), 1);
    let source = DirSource::new(&src, vec![], false).unwrap();
    // The backup checks what it reuses, finds the chunks gone and stores
    // them again from the folder: the snapshot it commits is whole.
    let r = backup_with(&repo, &source, &opts(3), Some(&cache), &NoProgress).unwrap();
    assert!(r.objects_repaired >= 1, "{r:?}");
    check_clean(&repo_path, true);
    backup(&repo_path, &src, "src");
    check_clean(&repo_path, true);
}

#[test]
fn gc_keeps_what_heads_and_tags_name_and_survives_a_torn_list() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("s");
    write_file(&src.join("a.bin"), &noise(20_000, 1), 1);
    let first = backup(&repo, &src, "s");
    write_file(&src.join("a.bin"), &noise(20_000, 2), 2);
    let second = backup(&repo, &src, "s");
    write_file(&src.join("a.bin"), &noise(20_000, 3), 3);
    backup(&repo, &src, "s");
    // No marker for the first two, but a tag names the first and (as after
    // a crash or a hand edit) the head names the second: both stay whole.
    tag(&repo, "keep", &first);
    fs::remove_file(repo.join("snapshots").join(&first)).unwrap();
    fs::remove_file(repo.join("snapshots").join(&second)).unwrap();
    fs::write(repo.join("refs/heads/s"), format!("{second}\n")).unwrap();
    // A list torn by a crash is ignored (and its objects condemned afresh).
    fs::create_dir_all(repo.join("gc/condemned")).unwrap();
    fs::write(
        repo.join("gc/condemned/00000000000000000007.list"),
        b"belay-condemned 1\nxx",
    )
    .unwrap();
    // Temporary files abandoned by crashed writers two days ago go; a
    // fresh one (a write in progress) stays.
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    let obj_dir = belay_suite::objects::places(&repo)[0]
        .file
        .parent()
        .unwrap()
        .to_path_buf();
    for p in [
        obj_dir.join(".tmp-old"),
        repo.join("snapshots/.tmp-old"),
        repo.join("refs/heads/.tmp-old"),
    ] {
        fs::write(&p, b"x").unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
    }
    fs::write(obj_dir.join(".tmp-fresh"), b"x").unwrap();
    let before = objects(&repo);
    let g = belay_json(&repo, &["gc", "--now"]);
    // No object goes (format 2 may still rewrite small packs into one).
    assert_eq!(
        objects(&repo).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{g}"
    );
    assert_eq!(g["roots"], 3);
    assert_eq!(g["temp_files_removed"], 3);
    assert!(obj_dir.join(".tmp-fresh").exists());
    assert!(!repo.join("snapshots/.tmp-old").exists());
    check_clean(&repo, true);
    for id in [&first, &second] {
        let to = tmp.path().join(format!("r-{id}"));
        belay(&repo)
            .args(["restore", id, "--to"])
            .arg(&to)
            .assert()
            .success();
    }
    assert!(!repo.join("gc/condemned/00000000000000000007.list").exists());
}

#[test]
fn check_finds_a_file_whose_chunks_do_not_add_up_to_its_size() {
    use belay_store::object::ObjectKind;
    use belay_store::tree::{Node, Tree, TreeEntry};
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = init(tmp.path());
    let repo = belay_store::Repo::open(&repo_path).unwrap();
    let (chunk, _) = repo.write_object(ObjectKind::Chunk, b"hello\n").unwrap();
    let tree = Tree {
        entries: vec![TreeEntry {
            name: b"liar.txt".to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: 99,
                sha256: [0; 32],
                chunks: vec![chunk],
            },
        }],
    };
    let sid = belay_suite::handmade::commit_tree(&repo, "x", &tree);
    let (code, human, v) = check_output(&repo_path, &[]);
    assert_eq!(code, 3, "{human}");
    assert_eq!(v["problems"][0]["kind"], "size-mismatch");
    assert!(human.contains("liar.txt"), "{human}");
    assert!(
        human.contains(&format!("x@{}:liar.txt", &sid.to_hex()[..12])),
        "{human}"
    );
}

#[test]
fn gc_frees_a_full_disk() {
    // A backup that failed for lack of space leaves its chunks behind (in
    // format 1); gc (which needs no more than one free block) reclaims them.
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let Some(_disk) = belay_suite::fsutil::small_tmpfs(&mnt, 600) else {
        return;
    };
    // Format 1 leaves the failed backup's objects filling the disk; format
    // 2 had them in a pack it could not write, so nothing is left.
    for format in ["1", "2"] {
        let repo = init_format(&mnt, format);
        let src = t.path().join("src");
        write_file(&src.join("small.txt"), b"fits\n", 1);
        write_file(&src.join("big.bin"), &noise(2 << 20, 11), 1);
        belay(&repo)
            .args(["backup", src.to_str().unwrap()])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("No space left on device"));
        let g = belay_json(&repo, &["gc", "--now"]);
        if format == "1" {
            assert!(g["deleted_bytes"].as_u64().unwrap() > 400_000, "{g}");
        }
        fs::remove_file(src.join("big.bin")).unwrap();
        backup(&repo, &src, "src");
        check_clean(&repo, true);
        let lock = repo.join("locks/gc.json");
        assert!(!lock.exists(), "the lock is released");
        fs::remove_dir_all(&repo).unwrap();
        fs::remove_dir_all(&src).unwrap();
    }
}

#[test]
fn gc_deletes_garbage_packs_on_a_disk_with_no_room_to_repack() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let Some(_disk) = belay_suite::fsutil::small_tmpfs(&mnt, 1500) else {
        return;
    };
    let repo = init_format(&mnt, "2");
    let src = t.path().join("src");
    write_file(&src.join("a.bin"), &noise(400_000, 21), 1);
    backup(&repo, &src, "s");
    fs::remove_file(src.join("a.bin")).unwrap();
    write_file(&src.join("b.bin"), &noise(400_000, 22), 2);
    backup(&repo, &src, "s");
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    // Fill the disk to the last block.
    let filler = mnt.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0x5au8; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    // The forgotten snapshot's pack goes although no new index fits.
    let g = belay_json(&repo, &["gc", "--now"]);
    assert!(g["deleted_bytes"].as_u64().unwrap() >= 400_000, "{g}");
    assert!(
        g["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no space left")),
        "{g}"
    );
    check_clean(&repo, true);
    // With room again, the next gc writes the consolidated index.
    fs::remove_file(&filler).unwrap();
    let g = belay_json(&repo, &["gc", "--now"]);
    assert_eq!(g["warnings"].as_array().unwrap().len(), 0, "{g}");
    check_clean(&repo, true);
    let v = belay_json(&repo, &["check"]);
    assert_eq!(v["indexes"], 1, "{v}");
    assert_eq!(v["pack_warnings"].as_array().unwrap().len(), 0, "{v}");
}

// ---------------------------------------------------------------------------
// Crash safety: kill -9 at seeded random moments.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run_killed(repo: &Path, args: &[&str], after: Duration) -> bool {
    let mut c = Command::new(belay_bin())
        .arg("-r")
        .arg(repo)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < after {
        if c.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let killed = c.try_wait().unwrap().is_none();
    let _ = c.kill(); // SIGKILL
    let _ = c.wait();
    killed
}

fn timed(repo: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = belay(repo).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Loose chunks and trees left in a repository (format 1's layout).
fn loose_chunks_and_trees(repo: &Path) -> usize {
    belay_suite::objects::places(repo)
        .iter()
        .filter(|p| !p.packed && (p.kind == 1 || p.kind == 2))
        .count()
}

#[test]
fn migrate_converts_a_v1_repository_in_place_and_survives_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let template = init_format(tmp.path(), "1");
    let src = tmp.path().join("src");
    let mut snaps = Vec::new();
    for i in 0..3u64 {
        write_file(
            &src.join(format!("lib/m{i}.py")),
            b"import os\n".repeat(300 + i as usize).as_slice(),
            10 + i as i64,
        );
        write_file(&src.join("data.bin"), &noise(60_000, 40 + i), 10 + i as i64);
        snaps.push(backup(&template, &src, "proj"));
        copy_dir(&src, &tmp.path().join(format!("copy-{i}")));
    }
    tag(&template, "first", &snaps[0]);
    let log_before = belay_json(&template, &["log"]);
    assert!(loose_chunks_and_trees(&template) > 10);
    let restores_intact = |r: &Path, label: &str| {
        for (i, id) in snaps.iter().enumerate() {
            let to = tmp.path().join(format!("out-{label}-{i}"));
            belay(r)
                .args(["restore", id, "--to"])
                .arg(&to)
                .assert()
                .success();
            assert_same_tree(&tmp.path().join(format!("copy-{i}")), &to);
            fs::remove_dir_all(&to).unwrap();
        }
    };

    // A migration: same history, every snapshot restores, and gc (after
    // the grace period) removes the loose copies.
    let r = tmp.path().join("migrated");
    copy_repo(&template, &r);
    let v = belay_json(&r, &["migrate"]);
    assert_eq!(
        (v["from"].as_u64(), v["to"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert!(v["objects_packed"].as_u64().unwrap() > 10, "{v}");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(r.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    assert_eq!(belay_json(&r, &["log"]), log_before);
    check_clean(&r, true);
    restores_intact(&r, "m");
    belay_json(&r, &["gc", "--grace", "0"]);
    belay_json(&r, &["gc", "--grace", "0"]);
    assert_eq!(loose_chunks_and_trees(&r), 0, "gc removed the loose copies");
    check_clean(&r, true);
    restores_intact(&r, "gc");
    assert_eq!(belay_json(&r, &["migrate"])["already"], true);

    // kill -9 at seeded moments of a migration: the repository is whole
    // (format 1 or 2), and a rerun completes.
    let probe = tmp.path().join("probe");
    copy_repo(&template, &probe);
    let dur = timed(&probe, &["migrate"]);
    let mut rng = Rng(0x5eed_0010);
    let mut bound = dur.as_micros() as u64 + 1;
    let (mut killed, mut attempts) = (0, 0);
    while killed < 15 {
        attempts += 1;
        assert!(attempts <= 80, "too few kills: {killed} of {attempts}");
        let repo = tmp.path().join(format!("k{attempts}"));
        copy_repo(&template, &repo);
        let delay = Duration::from_micros(rng.next() % bound);
        if run_killed(&repo, &["migrate"], delay) {
            killed += 1;
            bound = bound * 21 / 20;
        } else {
            bound = (bound * 4 / 5).max(2_000);
        }
        check_clean(&repo, false);
        assert_eq!(belay_json(&repo, &["log"]), log_before);
        let v = belay_json(&repo, &["migrate"]);
        assert!(v["already"] == true || v["to"] == 2, "{v}");
        check_clean(&repo, true);
        fs::remove_dir_all(&repo).unwrap();
    }
}

#[test]
fn kill_9_during_backup_and_gc_leaves_a_clean_repository_and_reruns_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, src) = concurrency_template(tmp.path());
    // Make the backup write something new too.
    for i in 0..20 {
        write_file(&src.join(format!("n/{i}.txt")), &noise(3000, 1000 + i), 20);
    }
    let probe = tmp.path().join("probe");
    copy_repo(&template, &probe);
    let backup_args = ["backup", src.to_str().unwrap(), "--name", "src"];
    let backup_time = timed(&probe, &backup_args);
    let gc_args = ["gc", "--grace", "0"];
    let probe2 = tmp.path().join("probe2");
    copy_repo(&template, &probe2);
    let gc_time = timed(&probe2, &gc_args);

    let mut rng = Rng(0x5eed_0006);
    // 50 trials each that were really killed mid-run: delays are drawn
    // (seeded) below a bound that adapts to how long the command takes on
    // this machine now (shrinks when the command finished first).
    const TRIALS: usize = 50;
    let mut killed = [0usize; 2];
    let mut attempts = [0usize; 2];
    let mut latest_kill = [Duration::ZERO; 2];
    for (which, (args, dur)) in [(&backup_args[..], backup_time), (&gc_args[..], gc_time)]
        .into_iter()
        .enumerate()
    {
        let mut bound = dur.as_micros() as u64 + 1;
        while killed[which] < TRIALS {
            attempts[which] += 1;
            assert!(attempts[which] <= TRIALS * 4, "too few kills: {killed:?}");
            let repo = tmp.path().join(format!("k{which}-{}", attempts[which]));
            copy_repo(&template, &repo);
            let delay = Duration::from_micros(rng.next() % bound);
            if run_killed(&repo, args, delay) {
                killed[which] += 1;
                latest_kill[which] = latest_kill[which].max(delay);
                bound = bound * 21 / 20;
            } else {
                bound = (bound * 4 / 5).max(2_000);
            }
            check_clean(&repo, false);
            // A rerun completes (a killed gc's lock and marks are stale).
            let out = belay(&repo).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "rerun after kill at {delay:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if which == 1 {
                // And a backup after a killed gc commits a complete snapshot.
                backup(&repo, &src, "src");
            }
            check_clean(&repo, true);
            fs::remove_dir_all(&repo).unwrap();
        }
    }
    eprintln!(
        "kill -9 trials: backup {} killed of {} runs (latest kill {:?}; a backup takes {backup_time:?}), gc {} killed of {} runs (latest kill {:?}; a gc takes {gc_time:?})",
        killed[0], attempts[0], latest_kill[0], killed[1], attempts[1], latest_kill[1]
    );
}

// ---------------------------------------------------------------------------
// Corruption: each kind is found, named with its path, and its files listed.

fn check_output(repo: &Path, args: &[&str]) -> (i32, String, serde_json::Value) {
    let out = belay(repo).arg("check").args(args).output().unwrap();
    let human = String::from_utf8_lossy(&out.stdout).to_string();
    let j = belay(repo)
        .args(["--json", "check"])
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    (out.status.code().unwrap(), human, v)
}

/// The first chunk of the file at `REV:PATH`, and the file holding it (its
/// loose file, or its pack). `ls --json` (sha256) is not enough: read the
/// tree with the store.
fn first_chunk_of(repo: &Path, rev_path: &str) -> (ObjectId, PathBuf) {
    let r = belay_store::Repo::open(repo).unwrap();
    let (rev, path) = rev_path.split_once(':').unwrap();
    let id = belay_store::rev::resolve(&r, rev).unwrap();
    let snap = r.read_snapshot(&id).unwrap();
    let e = belay_store::walk::lookup(&r, &snap.tree, path.as_bytes())
        .unwrap()
        .unwrap();
    match e.node {
        belay_store::tree::Node::File { chunks, .. } => (chunks[0], r.object_path(&chunks[0])),
        _ => panic!("not a file"),
    }
}

fn find_chunk_of(repo: &Path, rev_path: &str) -> PathBuf {
    first_chunk_of(repo, rev_path).1
}

/// Whether `text` names the object file `file` by its place: its path,
/// or on object storage (the test matrix) its URL, which ends the same.
fn names_place(text: &str, file: &Path) -> bool {
    let name = file.file_name().unwrap().to_str().unwrap();
    text.contains(file.to_str().unwrap()) || text.contains(&format!("/{name}"))
}

/// Whether `check --json` output `v` lists a problem that `matches`.
fn has_problem(v: &serde_json::Value, matches: impl Fn(&serde_json::Value) -> bool) -> bool {
    v["problems"].as_array().unwrap().iter().any(matches)
}

/// The repository the damage tests break copies of: two snapshots of a
/// small tree (a text file, a 40 KB binary, a text file in `lib/`, then
/// one more file), clean by `check --read-data`. Returns the template and
/// the two snapshot ids.
fn damage_template(tmp: &Path, format: &str) -> (PathBuf, String, String) {
    let repo = init_format(tmp, format);
    let src = tmp.join("dev");
    write_file(
        &src.join("main.py"),
        b"print('main')\n".repeat(50).as_slice(),
        1,
    );
    write_file(&src.join("lib/a.bin"), &noise(40_000, 7), 1);
    write_file(&src.join("lib/b.txt"), b"bbbb\n".repeat(100).as_slice(), 1);
    let s1 = backup(&repo, &src, "dev");
    write_file(&src.join("extra.txt"), b"extra\n", 2);
    let s2 = backup(&repo, &src, "dev");
    let (code, _, v) = check_output(&repo, &["--read-data"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    let template = tmp.join("template");
    copy_dir(&repo, &template);
    (template, s1, s2)
}

#[test]
fn check_finds_and_names_every_kind_of_damage() {
    let tmp = tempfile::tempdir().unwrap();
    // Damage to loose object files (format 1); packs: see
    // check_finds_damage_to_packs_and_index_objects.
    let (template, s1, s2) = damage_template(tmp.path(), "1");
    let fresh = |name: &str| {
        let r = tmp.path().join(name);
        copy_repo(&template, &r);
        r
    };

    // Flipped byte in a chunk's payload: only reading the data finds it.
    let r = fresh("flip");
    let chunk = find_chunk_of(&r, "dev:lib/b.txt");
    let mut bytes = fs::read(&chunk).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    fs::write(&chunk, bytes).unwrap();
    assert_eq!(check_output(&r, &[]).0, 0, "headers and sizes are intact");
    let (code, human, v) = check_output(&r, &["--read-data"]);
    assert_eq!(code, 3, "{human}");
    assert!(names_place(&human, &chunk), "{human}");
    assert!(human.contains("lib/b.txt"), "{human}");
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "corrupt");
    assert_eq!(
        p["snapshots"].as_array().unwrap().len(),
        2,
        "both snapshots hold it"
    );

    // Truncated chunk: found without reading data, with the files it breaks.
    let r = fresh("trunc");
    let chunk = find_chunk_of(&r, "dev:lib/a.bin");
    let bytes = fs::read(&chunk).unwrap();
    fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3, "{human}");
    assert_eq!(v["problems"][0]["kind"], "truncated");
    assert!(names_place(&human, &chunk), "{human}");
    let files = v["problems"][0]["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.as_str().unwrap().ends_with(":lib/a.bin"))
    );
    assert_eq!(files.len(), 2);

    // Missing chunk.
    let r = fresh("missing");
    let chunk = find_chunk_of(&r, "dev:main.py");
    fs::remove_file(&chunk).unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3);
    assert_eq!(v["problems"][0]["kind"], "missing");
    assert!(
        names_place(&human, &chunk) && human.contains("main.py"),
        "{human}"
    );

    // Flipped byte in a tree: trees are always read whole.
    let r = fresh("tree");
    let rr = belay_store::Repo::open(&r).unwrap();
    let root = rr
        .read_snapshot(&ObjectId::from_hex(&s2).unwrap())
        .unwrap()
        .tree;
    let tree_path = rr.object_path(&root);
    let mut bytes = fs::read(&tree_path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    fs::write(&tree_path, bytes).unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3);
    assert!(names_place(&human, &tree_path), "{human}");
    assert_eq!(v["problems"][0]["snapshots"][0], s2.as_str());

    // Dangling ref, bad ref, garbage marker, marker of a missing snapshot.
    let r = fresh("refs");
    tag(&r, "gone", &"ab".repeat(32));
    fs::write(r.join("refs/tags/junk"), "not an id\n").unwrap();
    fs::write(r.join("snapshots/garbage"), "x").unwrap();
    fs::write(r.join("snapshots").join("cd".repeat(32)), "").unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3, "{human}");
    let kinds: BTreeSet<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["bad-marker", "bad-ref", "dangling-ref"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(human.contains("refs/tags/gone"), "{human}");
    assert!(human.contains("refs/tags/junk"), "{human}");
    assert!(human.contains("snapshots/garbage"), "{human}");
    assert!(human.contains(&"cd".repeat(32)), "{human}");
    // gc refuses nothing here but never deletes around damage it cannot read.
    let _ = s1;
}

#[test]
fn check_finds_damage_to_packs_and_index_objects() {
    use belay_suite::objects::{place_of, places};
    let tmp = tempfile::tempdir().unwrap();
    let (template, _, _) = damage_template(tmp.path(), "2");
    let v = belay_json(&template, &["check"]);
    assert_eq!(v["packs"], 2, "{v}");
    assert_eq!(v["indexes"], 2, "{v}");
    let fresh = |name: &str| {
        let r = tmp.path().join(name);
        copy_repo(&template, &r);
        r
    };
    // The pack's name (as the store gives it) and the chunk's place in it.
    let chunk_of = |r: &Path, rev_path: &str| {
        let (chunk, pack) = first_chunk_of(r, rev_path);
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        (name, place_of(r, &chunk))
    };

    // A flipped byte inside a packed chunk: only reading the data finds it,
    // named by object and pack, with the files it breaks.
    let r = fresh("flip");
    let (pack, place) = chunk_of(&r, "dev:lib/b.txt");
    assert_eq!(place.file.file_name().unwrap().to_str().unwrap(), pack);
    place.flip_last_byte();
    assert_eq!(check_output(&r, &[]).0, 0, "headers and sizes are intact");
    let (code, human, v) = check_output(&r, &["--read-data"]);
    assert_eq!(code, 3, "{human}");
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "corrupt", "{v}");
    assert_eq!(p["object"], place.hex());
    assert!(
        human.contains(&pack) && human.contains("lib/b.txt"),
        "{human}"
    );
    assert!(
        v["pack_warnings"][0].as_str().unwrap().contains(&pack),
        "the pack itself no longer hashes to its name: {v}"
    );

    // A pack cut short: found without reading data; every object past the
    // cut is named, with its files.
    let r = fresh("trunc");
    let (pack, _) = chunk_of(&r, "dev:lib/a.bin");
    let last = places(&r)
        .into_iter()
        .rfind(|p| p.file.ends_with(&pack))
        .unwrap();
    last.truncate_half();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3, "{human}");
    assert!(
        has_problem(&v, |p| p["object"] == last.hex().as_str()
            && p["message"].as_str().unwrap().contains("truncated")),
        "{v}"
    );

    // A missing pack: its objects are missing, and so are the files.
    let r = fresh("missing");
    let (_, place) = chunk_of(&r, "dev:main.py");
    fs::remove_file(&place.file).unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3, "{human}");
    assert!(has_problem(&v, |p| p["kind"] == "missing"), "{v}");
    assert!(human.contains("main.py"), "{human}");
    // gc never deletes around damage it cannot read.
    let out = belay(&r).args(["gc", "--now"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was deleted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A damaged index object is named.
    let r = fresh("index");
    let ix = fs::read_dir(r.join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&ix).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x20;
    fs::write(&ix, bytes).unwrap();
    let (code, human, v) = check_output(&r, &[]);
    assert_eq!(code, 3, "{human}");
    assert!(has_problem(&v, |p| p["kind"] == "bad-index"), "{v}");
    assert!(
        human.contains(ix.file_name().unwrap().to_str().unwrap()),
        "{human}"
    );
    // Readers go on with the other index (objects only it lists read as
    // missing, named); gc refuses to work without knowing every pack.
    let out = belay(&r).args(["gc", "--now"]).output().unwrap();
    assert!(!out.status.success(), "gc ran past a damaged index");
    belay(&r).args(["log"]).assert().success();
    belay(&r)
        .args(["ls", "-R", "dev"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("missing"));
}

#[test]
fn read_data_subsets_cover_everything_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("s");
    for i in 0..40 {
        write_file(&src.join(format!("{i}.bin")), &noise(500, i), 1);
    }
    backup(&repo, &src, "s");
    let all = belay_json(&repo, &["check", "--read-data"]);
    let total = all["chunks_read"].as_u64().unwrap();
    assert_eq!(total, 40);
    let mut sum = 0;
    for n in 1..=3 {
        let v = belay_json(&repo, &["check", "--read-data-subset", &format!("{n}/3")]);
        sum += v["chunks_read"].as_u64().unwrap();
    }
    assert_eq!(sum, total);
    let pct = belay_json(&repo, &["check", "--read-data-subset", "25%"]);
    assert!(pct["chunks_read"].as_u64().unwrap() < total);
    belay(&repo)
        .args(["check", "--read-data-subset", "4/3"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("N/M"));
}

#[test]
fn stats_reports_dedup_and_growth() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let a = tmp.path().join("a");
    write_file(&a.join("x.bin"), &noise(50_000, 1), 1);
    backup(&repo, &a, "a");
    let b = tmp.path().join("b");
    write_file(&b.join("same.bin"), &noise(50_000, 1), 1);
    backup(&repo, &b, "b");
    write_file(&b.join("new.bin"), &noise(10_000, 2), 1);
    let last = backup(&repo, &b, "b");
    let v = belay_json(&repo, &["stats"]);
    assert_eq!(v["snapshots"], 3);
    assert_eq!(v["sources"], 2);
    assert_eq!(v["raw_bytes"], 50_000 + 50_000 + 60_000);
    assert_eq!(v["unique_bytes"], 60_000);
    let ratio = v["dedup_ratio"].as_f64().unwrap();
    assert!((ratio - 160.0 / 60.0).abs() < 1e-9);
    let growth = v["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 3);
    // The second snapshot only adds a tree and itself: the data was there.
    assert_eq!(growth[1]["new_objects"], 2);
    let one = belay_json(&repo, &["stats", &last]);
    assert_eq!(one["snapshots"], 1);
    assert!(one["exclusive_bytes"].as_u64().unwrap() > 10_000);
    belay(&repo).arg("stats").assert().success();
}

#[test]
fn maintenance_commands_have_help_with_examples() {
    for cmd in ["forget", "undo-forget", "gc", "check", "stats"] {
        let out = Command::new(belay_bin())
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{cmd}: {text}");
    }
    let _ = Timestamp::now();
}

#[test]
fn a_forgotten_snapshot_shows_as_forgotten_before_gc_collects_it() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(src.join("main.py"), format!("v = {i}\n")).unwrap();
        ids.push(backup(&repo, &src, "s"));
    }
    belay(&repo)
        .args(["forget", "--keep-last", "2"])
        .assert()
        .success();
    // The object of the forgotten snapshot is still there (no gc yet), but
    // history treats it as forgotten.
    let log = belay_json(&repo, &["log", "s"]);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2]["id"], ids[0].as_str());
    assert_eq!(log[2]["forgotten"], true);
    belay(&repo)
        .args(["show", "s~1"])
        .assert()
        .success()
        .stdout(predicates::str::contains("(forgotten)"));
    belay(&repo)
        .args(["show", "s~2"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("forgotten"));
    belay(&repo).args(["undo-forget"]).assert().success();
    belay(&repo).args(["show", "s~2"]).assert().success();
}

#[test]
fn a_torn_object_found_by_check_is_written_again_by_the_next_backup() {
    // Format 1: a loose chunk cut short (found by a plain check); format
    // 2: a damaged envelope inside a pack (found by reading the data).
    for format in ["1", "2"] {
        let t = tempfile::tempdir().unwrap();
        let repo = init_format(t.path(), format);
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.bin"), noise(5000, 77)).unwrap();
        backup(&repo, &src, "s");
        // Back up once more so the cache knows every object of the source.
        backup(&repo, &src, "s");
        let chunk = belay_suite::objects::first_of_kind(&repo, 1);
        if format == "1" {
            chunk.truncate_half();
            belay(&repo).arg("check").assert().code(3);
        } else {
            chunk.flip_last_byte();
            belay(&repo).args(["check", "--read-data"]).assert().code(3);
        }
        // Another source with the same content: without the check's warning
        // to the cache, it would reuse the damaged chunk.
        let out = belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "other"]);
        assert_eq!(out["objects_added"], 2, "{out}");
        if format == "2" {
            // The damaged pack goes with the next gc, which takes the good
            // copy the backup wrote.
            belay_json(&repo, &["gc", "--now"]);
        }
        check_clean(&repo, true);
    }
}
