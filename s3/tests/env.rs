//! What comes from the environment: credentials and region
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) and
//! `BELAY_S3_CONDITIONAL`. One test in its own binary: it sets process
//! variables, which no other thread may be reading.

use belay_s3::{S3Storage, parse_location};
use belay_store::atomic::Published;
use belay_store::storage::Storage;
use belay_suite::s3::S3Server;

fn set(k: &str, v: &str) {
    // SAFETY: the only test in this binary sets these before any other
    // thread of its own (the S3 runtime included) exists or reads them.
    unsafe { std::env::set_var(k, v) }
}

#[test]
fn credentials_region_and_conditional_mode_from_the_environment() {
    let server = S3Server::start();
    for (k, v) in server.env() {
        set(k, &v);
    }
    set("AWS_CONFIG_FILE", "/dev/null");
    set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let loc = parse_location(&server.location()).unwrap().unwrap();

    // Probed (the default): rclone serve s3 ignores `If-None-Match: *`, so
    // put_new checks with a HEAD first.
    let s = S3Storage::open(&loc).unwrap();
    assert!(matches!(
        s.put_new("objects/k", b"one", true).unwrap(),
        Published::Created
    ));
    assert!(matches!(
        s.put_new("objects/k", b"two", true).unwrap(),
        Published::AlreadyExisted
    ));
    assert_eq!(s.read("objects/k", 10).unwrap(), b"one");
    let honoured = s.conditional_puts().unwrap();
    eprintln!("rclone serve s3 honours If-None-Match: *: {honoured}");
    assert!(!honoured, "rclone 1.75.2 was found to ignore If-None-Match");

    // Forced on: the header alone (which rclone ignores: the second PUT
    // overwrites, as the probe found).
    set("BELAY_S3_CONDITIONAL", "on");
    let s = S3Storage::open(&loc).unwrap();
    let before = s.requests();
    assert!(matches!(
        s.put_new("objects/k2", b"one", true).unwrap(),
        Published::Created
    ));
    let second = s.put_new("objects/k2", b"two", true).unwrap();
    let d = s.requests() - before;
    assert_eq!((d.put, d.head), (2, 0), "{d:?}");
    assert!(matches!(second, Published::Created));
    assert_eq!(s.read("objects/k2", 10).unwrap(), b"two");

    // Forced off: HEAD then PUT, no probe.
    set("BELAY_S3_CONDITIONAL", "off");
    let s = S3Storage::open(&loc).unwrap();
    assert!(matches!(
        s.put_new("objects/k2", b"three", true).unwrap(),
        Published::AlreadyExisted
    ));
    let d = s.requests();
    assert_eq!((d.put, d.head, d.total()), (0, 1, 1), "{d:?}");

    set("BELAY_S3_CONDITIONAL", "sometimes");
    let e = S3Storage::open(&loc).err().unwrap();
    assert!(e.to_string().contains("BELAY_S3_CONDITIONAL"), "{e}");
    set("BELAY_S3_CONDITIONAL", "probe");

    // A wrong secret from the environment: the access-denied line.
    set("AWS_SECRET_ACCESS_KEY", "wrong");
    let s = S3Storage::open(&loc).unwrap();
    let e = s.read("objects/k", 10).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "access denied by {}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE",
            server.endpoint()
        )
    );
}
