//! `probeforge watch` against a signed APT mirror on loopback serving real Debian header
//! packages: a newer kernel added while the watch runs is published within its interval plus
//! its build time with `first_seen`/`published` in index.json; an idle round reads no index
//! body (the server answers 304); a second watch on the repository exits 2 naming the first
//! one's pid; SIGTERM exits 0 with the state written, and a restart resumes from it.

mod common;

use std::fs;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::gpg::test_key;
use common::server::Server;
use common::watch_mirror::{add_to_pool, catalog, publish_index, two_kernels};
use common::*;
use probeforge::repo::KernelRecord;

/// The next round line of the watch's stdout, within `limit`.
fn next_round(rx: &mpsc::Receiver<String>, limit: Duration) -> serde_json::Value {
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|e| panic!("no round within {limit:?}: {e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn probes(repo: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    v["probes"].as_array().unwrap().clone()
}

fn probe<'a>(all: &'a [serde_json::Value], file: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|p| p["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in index.json: {all:?}"))
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    probeforge::base::utc(secs)
}

#[test]
fn a_kernel_added_while_watching_is_published_and_an_idle_round_reads_no_body() {
    let ks = two_kernels();
    let ((newer, newer_files), (older, older_files)) = (&ks[0], &ks[1]);
    let t = tmpdir();
    let root = t.path().join("srv/debian");
    add_to_pool(&root, older, older_files);
    let key = test_key(t.path(), "mirror");
    publish_index(&root, "bookworm", &key);
    let server = Server::start(t.path().join("srv"));
    let cat = catalog(t.path(), &key, &[("bw", "bookworm")]);
    let repo = t.path().join("repo");
    let mirror = format!("debian={}/debian", server.base);
    let mut args: Vec<String> = [
        "--catalog",
        cat.to_str().unwrap(),
        "--mirror",
        &mirror,
        "watch",
        "bw",
        "--repo",
        repo.to_str().unwrap(),
        "--arch",
        "x86_64",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(driver_8_args());
    let stderr_path = t.path().join("watch.stderr");
    let mut child = Command::new(bin())
        .args(&args)
        .args(["--interval", "2s"])
        .env("PROBEFORGE_CACHE", cache_dir())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stderr = || fs::read_to_string(&stderr_path).unwrap_or_default();
    let old_file = falco_file(older, "o");
    let new_file = falco_file(newer, "o");

    // Round 1: the index is new to the watch; the one kernel is built and published.
    let r1 = next_round(&rx, Duration::from_secs(150));
    assert_eq!(r1["polls"][0]["status"], "changed", "{r1}\n{}", stderr());
    assert_eq!(
        r1["published"],
        serde_json::json!([old_file]),
        "{r1}\n{}",
        stderr()
    );
    let p = probes(&repo);
    let first_old = probe(&p, &old_file);
    let (seen, published) = (
        first_old["first_seen"].as_str().unwrap(),
        first_old["published"].as_str().unwrap(),
    );
    assert!(seen <= published, "{first_old}");

    // Round 2: nothing changed: one request, answered 304, no body, nothing listed.
    let before = server.all_hits();
    let r2 = next_round(&rx, Duration::from_secs(30));
    let after = server.all_hits();
    assert_eq!(r2["polls"][0]["status"], "not-modified", "{r2}");
    assert_eq!(r2["polls"][0]["bytes"], 0, "{r2}");
    assert_eq!(r2["listed_targets"], serde_json::json!([]), "{r2}");
    let mut new_hits: Vec<(String, Vec<u16>)> = after
        .iter()
        .map(|(p, h)| (p.clone(), h[before.get(p).map_or(0, Vec::len)..].to_vec()))
        .filter(|(_, h)| !h.is_empty())
        .collect();
    new_hits.sort();
    // Between two round lines there is exactly one idle round's traffic: InRelease, 304.
    assert_eq!(
        new_hits,
        vec![("/debian/dists/bookworm/InRelease".to_owned(), vec![304])],
        "an idle round"
    );

    // A second watch on the same repository: refused (2), naming the first one's pid.
    let (code, _, err) = run(&[args.clone(), vec!["--once".into()]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("pid {}", child.id())) && err.contains("watch.lock"),
        "{err}"
    );
    // `build-all --watch` is the same watch: the same lock refuses it.
    let as_build_all: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "watch" => "build-all".to_owned(),
            _ => a.clone(),
        })
        .chain(["--watch".to_owned(), "2s".to_owned()])
        .collect();
    let (code, _, err) = run(&as_build_all);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("pid {}", child.id())) && err.contains("watch.lock"),
        "{err}"
    );

    // A newer kernel reaches the mirror: its packages, a new index, signed again.
    add_to_pool(&root, newer, newer_files);
    let changed_at = now_utc();
    let changed = Instant::now();
    publish_index(&root, "bookworm", &key);
    let r = loop {
        let r = next_round(&rx, Duration::from_secs(150));
        if r["published"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == &*new_file)
        {
            break r;
        }
        // A round that began before the new index was in place saw nothing new.
        assert_eq!(r["published"], serde_json::json!([]), "{r}\n{}", stderr());
    };
    let took = changed.elapsed().as_secs_f64();
    let build = r["seconds"].as_f64().unwrap();
    // Within one interval (2 s) plus the round that built it, and slack for the idle round
    // that may have been polling as the index changed.
    assert!(
        took <= 2.0 + build + 3.0,
        "published {took:.1}s after the change; its round took {build:.1}s"
    );
    assert_eq!(r["polls"][0]["status"], "changed", "{r}");
    assert_eq!(r["skipped"], 1, "the older kernel is not built again: {r}");
    let p = probes(&repo);
    let new = probe(&p, &new_file);
    let (seen, published) = (
        new["first_seen"].as_str().unwrap(),
        new["published"].as_str().unwrap(),
    );
    assert!(
        changed_at.as_str() <= seen && seen <= published,
        "changed at {changed_at}: {new}"
    );
    // The older probe's stamps did not move.
    assert_eq!(probe(&p, &old_file)["first_seen"], first_old["first_seen"]);
    assert_eq!(probe(&p, &old_file)["published"], first_old["published"]);
    // Time stamps live in index.json, not in the built bytes' record.
    let meta = fs::read_to_string(
        repo.join(".probeforge/meta/8.0.0+driver/x86_64")
            .join(format!("{new_file}.json")),
    )
    .unwrap();
    assert!(
        !meta.contains("first_seen") && !meta.contains("\"published\""),
        "{meta}"
    );

    // SIGTERM: exit 0, the state written.
    // SAFETY: a signal to the child this test spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "watch did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{}", stderr());
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join(".probeforge/watch.json")).unwrap()).unwrap();
    assert_eq!(state["format"], "probeforge-watch-1");
    let url = format!("{}/debian/dists/bookworm/InRelease", server.base);
    assert!(state["indexes"][&url]["etag"].is_string(), "{state}");
    let key_of = |k: &KernelRecord| format!("x86_64/debian/{}", k.release);
    assert_eq!(
        state["first_seen"][key_of(newer)],
        new["first_seen"],
        "{state}"
    );
    assert_eq!(
        state["first_seen"][key_of(older)],
        first_old["first_seen"],
        "{state}"
    );
    assert!(state["rounds"].as_u64().unwrap() >= 3, "{state}");
    // The stamps are extra fields of index.json: `check` still reads it as it did.
    let (code, out, err) = run(&["check", "--repo", repo.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    // A restart resumes: its first round revalidates (304) and builds nothing; the lock is
    // free again.
    let (code, out, err) = run(&[args, vec!["--once".into()]].concat());
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["polls"][0]["status"], "not-modified", "{r}");
    assert_eq!(r["published"], serde_json::json!([]), "{r}");

    // The site shows the target's time to driver over both probes.
    let (code, _, err) = run(&["site", "--repo", repo.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let delays = fs::read_to_string(repo.join("site/delays.js")).unwrap();
    let json = delays
        .strip_prefix("window.PROBEFORGE_DELAYS = ")
        .and_then(|d| d.trim_end().strip_suffix(';'))
        .unwrap();
    let d: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(d["debian"]["n"], 2, "{d}");
    assert!(d["debian"]["max"].as_f64().unwrap() >= d["debian"]["min"].as_f64().unwrap());
}

/// Pocket reuse (#34 item 3): a kernel built while it is only in the pre-release pocket is not
/// built again when the same package reaches the release pocket. The farm skips it by its
/// file name (target id, release, kernel version: the same in both pockets), so the published
/// file, its record and its first sighting (the pocket's) stay as they were. Note: the skip is
/// by name, not by the package digest.
#[test]
fn a_kernel_built_from_the_proposed_pocket_is_reused_when_it_reaches_the_release() {
    let ks = two_kernels();
    let (k, files) = &ks[1];
    let t = tmpdir();
    let root = t.path().join("srv/debian");
    add_to_pool(&root, k, files);
    let key = test_key(t.path(), "mirror");
    publish_index(&root, "bookworm-proposed-updates", &key);
    let server = Server::start(t.path().join("srv"));
    let cat = catalog(
        t.path(),
        &key,
        &[
            ("bw-proposed", "bookworm-proposed-updates"),
            ("bw", "bookworm"),
        ],
    );
    let repo = t.path().join("repo");
    let mirror = format!("debian={}/debian", server.base);
    let mut args: Vec<String> = [
        "--catalog",
        cat.to_str().unwrap(),
        "--mirror",
        &mirror,
        "watch",
        "bw-proposed",
        "bw",
        "--repo",
        repo.to_str().unwrap(),
        "--arch",
        "x86_64",
        "--json",
        "--once",
    ]
    .map(String::from)
    .to_vec();
    args.extend(driver_8_args());
    let file = falco_file(k, "o");
    // Only the pocket has it (the release suite does not exist yet: nothing listed there).
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["published"], serde_json::json!([file]), "{r}\n{err}");
    let path = repo.join("8.0.0+driver/x86_64").join(&file);
    let before = fs::metadata(&path).unwrap();
    let p = probes(&repo);
    let stamped = probe(&p, &file).clone();
    assert!(stamped["first_seen"].is_string(), "{stamped}");

    // The same package (same digest) reaches the release: listed there, not built again.
    std::thread::sleep(Duration::from_millis(1100));
    publish_index(&root, "bookworm", &key);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        r["listed_targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "bw"),
        "{r}"
    );
    assert_eq!(r["published"], serde_json::json!([]), "{r}");
    assert_eq!(
        (r["skipped"].as_u64(), r["built"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    let after = fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((before.ino(), before.mtime()), (after.ino(), after.mtime()));
    let p = probes(&repo);
    assert_eq!(
        probe(&p, &file),
        &stamped,
        "its record and times are the pocket's"
    );
}
