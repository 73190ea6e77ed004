//! One conformance suite for every `Storage`: the same function runs on a
//! folder (`LocalFs`) and on S3 (`S3Storage` against `rclone serve s3`,
//! tests/setup.sh installs it). Plus S3 faults: throttling through a
//! fault-injecting proxy, a dead server, a wrong secret, a missing bucket.

use std::io;
use std::time::{Duration, Instant, SystemTime};

use belay_s3::{S3Credentials, S3Storage, parse_location};
use belay_store::atomic::Published;
use belay_store::storage::{LocalFs, Storage};
use belay_suite::s3::{ACCESS_KEY, FaultProxy, S3Server, SECRET_KEY};

fn keys(s: &dyn Storage, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    s.list(prefix, &mut |k, i| {
        out.push((k.to_string(), i.size));
        Ok(())
    })
    .unwrap();
    out.sort();
    out
}

fn near(a: SystemTime, b: SystemTime, within: Duration) -> bool {
    let d = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default();
    d <= within
}

/// What every storage must do. `sibling` is a storage on a sibling
/// prefix (another repository beside this one).
fn conformance(s: &dyn Storage, sibling: &dyn Storage) {
    // put_new is write-once.
    let k = "objects/ab/cd/abcd0001";
    assert!(matches!(
        s.put_new(k, b"hello", false).unwrap(),
        Published::Created
    ));
    assert!(matches!(
        s.put_new(k, b"other", true).unwrap(),
        Published::AlreadyExisted
    ));
    assert_eq!(s.read(k, 100).unwrap(), b"hello");
    s.sync(&[k.to_string()]).unwrap();
    s.sync_entry(k).unwrap();

    // read, read_range, stat.
    assert_eq!(s.read(k, 5).unwrap(), b"hello");
    let e = s.read(k, 4).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert_eq!(
        s.read("objects/ab/cd/none", 100).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(s.read_range(k, 1, 3).unwrap(), b"ell");
    assert_eq!(s.read_range(k, 0, 5).unwrap(), b"hello");
    let e = s.read_range(k, 3, 10).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let now = s.now("locks").unwrap();
    let st = s.stat(k).unwrap().unwrap();
    assert_eq!(st.size, 5);
    assert!(near(st.mtime.unwrap(), now, Duration::from_secs(60)));
    assert!(s.stat("objects/ab/cd/none").unwrap().is_none());
    assert!(near(now, SystemTime::now(), Duration::from_secs(60)));

    // An empty file.
    assert!(matches!(
        s.put_new("gc/empty", b"", true).unwrap(),
        Published::Created
    ));
    assert_eq!(s.read("gc/empty", 10).unwrap(), b"");
    assert_eq!(s.read("gc/empty", 0).unwrap(), b"");
    assert_eq!(s.stat("gc/empty").unwrap().unwrap().size, 0);

    // put_replace.
    s.put_replace("config", b"v1").unwrap();
    s.put_replace("config", b"version 2").unwrap();
    assert_eq!(s.read("config", 1000).unwrap(), b"version 2");

    // list (recursive, temp names too) and list_dir (direct names only).
    s.put_new("objects/ab/ef/abef0002", b"12", true).unwrap();
    s.put_new("objects/.tmp-upload-1", b"123", true).unwrap();
    s.put_new("objects2/sneaky", b"x", true).unwrap();
    assert_eq!(
        keys(s, "objects"),
        vec![
            ("objects/.tmp-upload-1".to_string(), 3),
            ("objects/ab/cd/abcd0001".to_string(), 5),
            ("objects/ab/ef/abef0002".to_string(), 2),
        ]
    );
    assert_eq!(keys(s, "objects/"), keys(s, "objects"));
    assert_eq!(keys(s, "nothing"), vec![]);
    s.put_new("sessions/b.json", b"{}", true).unwrap();
    s.put_new("sessions/a.json", b"{}", true).unwrap();
    s.put_new("sessions/.tmp-x", b"", true).unwrap();
    s.put_new("sessions/sub/deeper.json", b"{}", true).unwrap();
    assert_eq!(
        s.list_dir("sessions").unwrap(),
        vec![".tmp-x", "a.json", "b.json"]
    );
    assert_eq!(
        s.list_dir("sessions/").unwrap(),
        s.list_dir("sessions").unwrap()
    );
    assert_eq!(s.list_dir("missing").unwrap(), Vec::<String>::new());
    let mut listed_mtime = None;
    s.list("sessions", &mut |k, i| {
        if k == "sessions/a.json" {
            listed_mtime = i.mtime;
        }
        Ok(())
    })
    .unwrap();
    assert!(near(
        listed_mtime.expect("list gives mtimes"),
        now,
        Duration::from_secs(60)
    ));

    // A sibling prefix is another world.
    sibling
        .put_new("objects/ab/cd/other", b"theirs", true)
        .unwrap();
    assert_eq!(keys(s, "objects").len(), 3);
    assert_eq!(
        keys(sibling, "objects"),
        vec![("objects/ab/cd/other".to_string(), 6)]
    );
    assert!(sibling.stat(k).unwrap().is_none());

    // rename: absent → false; replaces the target.
    assert!(!s.rename("renames/none", "renames/to").unwrap());
    s.put_new("journal/a", b"A", true).unwrap();
    assert!(s.rename("journal/a", "trash/a").unwrap());
    assert!(s.stat("journal/a").unwrap().is_none());
    assert_eq!(s.read("trash/a", 10).unwrap(), b"A");
    s.put_new("journal/b", b"B", true).unwrap();
    assert!(s.rename("journal/b", "trash/a").unwrap());
    assert_eq!(s.read("trash/a", 10).unwrap(), b"B");
    assert!(s.stat("journal/b").unwrap().is_none());

    // touch moves mtime forward (second resolution: wait).
    let before = s.stat("trash/a").unwrap().unwrap().mtime.unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    s.touch("trash/a").unwrap();
    let after = s.stat("trash/a").unwrap().unwrap().mtime.unwrap();
    assert!(after > before, "{after:?} > {before:?}");
    assert_eq!(s.read("trash/a", 10).unwrap(), b"B");
    let later = s.now("trash").unwrap();
    assert!(later >= after, "{later:?} >= {after:?}");
    // now() leaves nothing behind.
    assert_eq!(s.list_dir("trash").unwrap(), vec!["a"]);
    assert_eq!(s.list_dir("locks").unwrap(), Vec::<String>::new());

    // delete: true, then false.
    assert!(s.delete("trash/a").unwrap());
    assert!(!s.delete("trash/a").unwrap());
    assert!(s.stat("trash/a").unwrap().is_none());

    s.create_dirs(&["objects", "index", "refs/heads"]).unwrap();
    s.sync_all().unwrap();
}

#[test]
fn local_fs_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let a = LocalFs::new(&tmp.path().join("repo"));
    let b = LocalFs::new(&tmp.path().join("repo2"));
    conformance(&a, &b);
    assert!(a.local_root().is_some());
}

fn creds() -> S3Credentials {
    S3Credentials::new(ACCESS_KEY, SECRET_KEY)
}

fn open(loc: &str, creds: S3Credentials) -> S3Storage {
    S3Storage::open_with(&parse_location(loc).unwrap().unwrap(), Some(creds)).unwrap()
}

#[test]
fn s3_conforms() {
    let server = S3Server::start();
    let s = open(&server.location(), creds());
    let sibling = open(
        &server.location_with(belay_suite::s3::BUCKET, "repo2"),
        creds(),
    );
    conformance(&s, &sibling);
    assert!(s.local_root().is_none());
    assert!(!s.set_mtime("config", SystemTime::now()).unwrap());
    // The objects are files in the bucket's folder.
    assert_eq!(
        std::fs::read(server.data_dir().join("repo/config")).unwrap(),
        b"version 2"
    );
    let loc = s.locate("objects/ab/cd/x");
    assert_eq!(
        loc.to_str().unwrap(),
        format!("{}/objects/ab/cd/x", server.location())
    );
    eprintln!(
        "rclone honours If-None-Match: {}",
        s.conditional_puts().unwrap()
    );
    eprintln!("requests: {:?}", s.requests());
}

#[test]
fn s3_empty_prefix_is_the_whole_bucket() {
    let server = S3Server::start();
    let s = open(&server.location_with(belay_suite::s3::BUCKET, ""), creds());
    s.put_new("config", b"c", true).unwrap();
    assert_eq!(
        std::fs::read(server.data_dir().join("config")).unwrap(),
        b"c"
    );
    assert_eq!(keys(&s, "config").len(), 0);
    assert_eq!(s.list_dir("").unwrap(), vec!["config"]);
    s.put_new("sub/x", b"x", true).unwrap();
    assert_eq!(keys(&s, "sub"), vec![("sub/x".to_string(), 1)]);
}

/// Requests per trait method, on a server that honours the header or
/// not: printed for the report, bounded here.
#[test]
fn s3_requests_per_operation() {
    let server = S3Server::start();
    let s = open(&server.location(), creds());
    s.put_new("probe-first", b"x", true).unwrap(); // the probe, once
    let step = |name: &str, f: &dyn Fn()| {
        let before = s.requests();
        f();
        let d = s.requests() - before;
        eprintln!("{name}: {d:?}");
        d
    };
    let d = step("put_new", &|| {
        s.put_new("objects/ab/cd/k", b"hello", true).unwrap();
    });
    assert_eq!(d.put, 1);
    assert!(d.total() <= 2);
    assert_eq!(d.bytes_sent, 5);
    let d = step("read", &|| {
        s.read("objects/ab/cd/k", 1 << 20).unwrap();
    });
    assert_eq!((d.get, d.total()), (1, 1));
    let d = step("read_range", &|| {
        s.read_range("objects/ab/cd/k", 1, 2).unwrap();
    });
    assert_eq!((d.get, d.total()), (1, 1));
    let d = step("stat", &|| {
        s.stat("objects/ab/cd/k").unwrap();
    });
    assert_eq!((d.head, d.total()), (1, 1));
    let d = step("put_replace", &|| s.put_replace("config", b"c").unwrap());
    assert_eq!((d.put, d.total()), (1, 1));
    let d = step("list", &|| {
        keys(&s, "objects");
    });
    assert_eq!((d.list, d.total()), (1, 1));
    let d = step("list_dir", &|| {
        s.list_dir("objects").unwrap();
    });
    assert_eq!((d.list, d.total()), (1, 1));
    let d = step("rename", &|| {
        s.rename("config", "config2").unwrap();
    });
    assert!(d.total() <= 3, "{d:?}");
    let d = step("touch", &|| s.touch("config2").unwrap());
    assert_eq!((d.get, d.put, d.total()), (1, 1, 2));
    let d = step("now", &|| {
        s.now("locks").unwrap();
    });
    assert_eq!((d.put, d.head, d.delete), (1, 1, 1));
    let d = step("delete", &|| {
        s.delete("config2").unwrap();
    });
    assert_eq!((d.head, d.delete, d.total()), (1, 1, 2));
    let d = step("delete absent", &|| {
        s.delete("config2").unwrap();
    });
    assert_eq!((d.head, d.total()), (1, 1));
}

#[test]
fn s3_throttling_is_retried() {
    let server = S3Server::start();
    // Every 3rd request answered with 503 SlowDown.
    let proxy = FaultProxy::start(
        server.port(),
        std::env::var("EVERY")
            .map(|v| v.parse().unwrap())
            .unwrap_or(3),
    );
    let loc = format!(
        "s3:http://127.0.0.1:{}/{}/repo",
        proxy.port(),
        belay_suite::s3::BUCKET
    );
    let s = open(&loc, creds());
    for i in 0..10 {
        let k = format!("objects/00/00/{i:04}");
        assert!(matches!(
            s.put_new(&k, format!("object {i}").as_bytes(), true)
                .unwrap(),
            Published::Created
        ));
        assert_eq!(s.read(&k, 100).unwrap(), format!("object {i}").as_bytes());
        assert!(s.stat(&k).unwrap().is_some());
    }
    assert_eq!(keys(&s, "objects").len(), 10);
    assert!(s.delete("objects/00/00/0000").unwrap());
    let r = s.requests();
    eprintln!(
        "through the proxy: {} requests, {} answered 503; client counted {r:?}",
        proxy.seen(),
        proxy.failed()
    );
    assert!(proxy.failed() > 5);
    assert_eq!(
        r.total(),
        proxy.seen(),
        "every request, retries included, is counted"
    );
    // Without faults, that is 10 × (put, get, head) + list + head + delete
    // (+ the probe): the retries are on top.
    assert!(r.total() >= 33 + proxy.failed());
}

fn one_line(e: &io::Error) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "one line: {m:?}");
    assert!(!m.contains(SECRET_KEY), "no secret: {m}");
    m
}

#[test]
fn s3_dead_server_is_one_line() {
    let mut server = S3Server::start();
    let s = open(&server.location(), creds());
    s.put_new("config", b"c", true).unwrap();
    server.kill();
    let t = Instant::now();
    let e = s.read("config", 100).unwrap_err();
    let m = one_line(&e);
    assert!(
        m.starts_with(&format!(
            "cannot reach {}: connection refused",
            server.endpoint()
        )),
        "{m}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let Err(e) = s.put_new("x", b"x", true) else {
        panic!("put_new on a dead server")
    };
    assert!(one_line(&e).starts_with("cannot reach"), "{e}");
    let e = s.list_dir("sessions").unwrap_err();
    assert!(one_line(&e).starts_with("cannot reach"), "{e}");
    // Back again: works again.
    server.restart();
    assert_eq!(s.read("config", 100).unwrap(), b"c");
}

#[test]
fn s3_wrong_secret_is_access_denied() {
    let server = S3Server::start();
    let s = open(
        &server.location(),
        S3Credentials::new(ACCESS_KEY, "wrong-secret"),
    );
    let want = format!(
        "access denied by {}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE",
        server.endpoint()
    );
    let e = s.read("config", 100).unwrap_err();
    assert_eq!(one_line(&e), want);
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    let e = s.put_replace("config", b"x").unwrap_err();
    assert_eq!(one_line(&e), want);
    let e = s.stat("config").unwrap_err();
    assert_eq!(one_line(&e), want);
    let e = s.list_dir("refs").unwrap_err();
    assert_eq!(one_line(&e), want);
    let s = open(&server.location(), S3Credentials::new("nobody", SECRET_KEY));
    let e = s.read("config", 100).unwrap_err();
    assert_eq!(one_line(&e), want);
}

#[test]
fn s3_missing_bucket_says_so() {
    let server = S3Server::start();
    let s = open(&server.location_with("no-such-bucket", "repo"), creds());
    let want = format!(
        "bucket no-such-bucket does not exist on {}: create it first",
        server.endpoint()
    );
    let e = s.read("config", 100).unwrap_err();
    assert_eq!(one_line(&e), want);
    let e = s.put_replace("config", b"x").unwrap_err();
    assert_eq!(one_line(&e), want);
    let e = s.list_dir("refs").unwrap_err();
    assert_eq!(one_line(&e), want);
}
