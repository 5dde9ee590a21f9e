//! Integrity of what probeforge keeps and publishes, on real Debian kernels and real probes:
//! a damaged download cache heals online and is named offline; `check` names every kind of
//! mismatch in a published repository, `--repair` restores the recorded bytes; `build-all`'s
//! fast path does not count a damaged probe as published; `--sign-key` signatures verify with
//! gpg(1), the outside reference.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::gpg::test_key;
use common::server::Server;
use common::*;
use probeforge::kernel::Arch;

/// Flips one byte in the middle of a file, after giving it its own inode (it may be a hard
/// link into the shared test cache). Returns the offset.
fn damage(p: &Path) -> usize {
    let mut b = fs::read(p).unwrap();
    fs::remove_file(p).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0xff;
    fs::write(p, &b).unwrap();
    at
}

fn run_in(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin())
        .args(args)
        .env("PROBEFORGE_CACHE", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cached_path(cache: &Path, sha: &str) -> PathBuf {
    cache.join("sha256").join(&sha[..2]).join(sha)
}

#[test]
fn a_damaged_cache_entry_heals_online_and_is_named_offline() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let src = libs_0_20_0();
    let t = tmpdir();
    let cache = fresh_cache(&t.path().join("cache"));
    let build = |out: &str, offline: bool| {
        let o = t.path().join(out);
        let mut a = vec![
            "build",
            "--target",
            "debian-bookworm",
            "--kernel",
            &k.release,
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-o",
            o.to_str().unwrap(),
        ];
        if offline {
            a.push("--offline");
        }
        let r = run_in(&cache, &a);
        (r, o.join(falco_file(&k, "o")))
    };
    // The reference: the same build from an intact cache.
    let ((code, _, err), reference) = build("ref", false);
    assert_eq!(code, 0, "{err}");

    // What FACTS measured: one flipped byte in the cached -common package.
    let common_pkg = k
        .packages
        .iter()
        .find(|p| p.name.ends_with("-common"))
        .unwrap();
    let entry = cached_path(&cache, &common_pkg.sha256);
    damage(&entry);

    // Offline: refused, naming the cache file as corrupt and the package it held; kept.
    let ((code, _, err), _) = build("offline", true);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cache entry `{}` is corrupt", entry.display()))
            && err.contains(&format!("package `{}`", common_pkg.name))
            && !err.contains("lzma"),
        "{err}"
    );
    assert!(entry.is_file(), "offline, the damaged entry is left to see");

    // Online: removed, downloaded again, and the same probe, byte for byte.
    let ((code, _, err), healed) = build("online", false);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("is corrupt") && err.contains("downloading"),
        "{err}"
    );
    assert_eq!(sha256_file(&entry), common_pkg.sha256);
    assert_eq!(fs::read(&healed).unwrap(), fs::read(&reference).unwrap());

    // Metadata: a damaged InRelease body and a damaged parsed-index memo.
    let n = net();
    let mirror = n.mirrors.resolve(&n.catalog, "debian").unwrap();
    let meta = cache
        .join("meta")
        .join(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            format!("{mirror}/dists/bookworm/InRelease").as_bytes(),
        )));
    assert!(meta.is_file(), "{}", meta.display());
    let list = |offline: bool| {
        let mut a = vec!["list-kernels", "debian-bookworm", "--arch", "x86_64"];
        if offline {
            a.push("--offline");
        }
        run_in(&cache, &a)
    };
    let (code, before, err) = list(true);
    assert_eq!(code, 0, "{err}");
    let memos: Vec<PathBuf> = fs::read_dir(cache.join("parsed"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("kernel-packages"))
        .collect();
    assert!(!memos.is_empty());
    for m in &memos {
        damage(m);
    }
    // A damaged memo is computed again from its (checked) index, offline too.
    let (code, out, err) = list(true);
    assert_eq!((code, &out), (0, &before), "{err}");
    assert!(err.contains("damaged"), "{err}");
    damage(&meta);
    let (code, _, err) = list(true);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cache entry `{}` is corrupt", meta.display())),
        "{err}"
    );
    let (code, out, err) = list(false);
    assert_eq!((code, &out), (0, &before), "{err}");
}

fn check(repo: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = vec!["check", "--repo", repo, "--json"];
    a.extend_from_slice(extra);
    let (code, out, err) = run(&a);
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// (kind, path) of each problem a check reported.
fn problems(v: &serde_json::Value) -> Vec<(String, String)> {
    v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems array in {v}"))
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_owned(),
                p["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn check_names_each_mismatch_repair_restores_and_signatures_verify_with_gpg() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let src = libs_0_20_0();
    let t = tmpdir();
    let repo = t.path().join("repo");
    let r = repo.to_str().unwrap();
    let cache = fresh_cache(&t.path().join("cache"));
    let key = test_key(t.path(), "probe-signer");
    let only = format!("^{}$", regex::escape(&k.release));
    let build_all = || {
        run_in(
            &cache,
            &[
                "build-all",
                "debian-bookworm",
                "--arch",
                "x86_64",
                "--only",
                &only,
                "--repo",
                r,
                "--driver-source",
                src.to_str().unwrap(),
                "--driver-version",
                "8.0.0+driver",
                "--sign-key",
                key.secret.to_str().unwrap(),
                "--json",
            ],
        )
    };
    let (code, out, err) = build_all();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kernels"][0]["status"], "built", "{v}");
    let dir = repo.join("8.0.0+driver/x86_64");
    let name = format!("8.0.0+driver/x86_64/{}", falco_file(&k, "o"));
    let probe = repo.join(&name);
    let original = fs::read(&probe).unwrap();
    let keyring = key.public.to_str().unwrap();
    let gpg_verifies = || {
        let o = key.gpg_status(&[
            "--verify",
            dir.join("SHA256SUMS.asc").to_str().unwrap(),
            dir.join("SHA256SUMS").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "gpg --verify: {err}");
        err.contains("Good signature")
    };

    // Clean, signed: gpg verifies SHA256SUMS.asc over SHA256SUMS, and so does check with the
    // public key.
    assert!(gpg_verifies());
    let (code, v, err) = check(r, &["--keyring", keyring]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["probes"], 1);
    assert_eq!(v["signatures"]["8.0.0+driver/x86_64"], "valid", "{v}");

    // A signature by a key that is not the one given.
    let other = test_key(t.path(), "someone-else");
    let (code, v, _) = check(r, &["--keyring", other.public.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&v),
        [(
            "signature".to_owned(),
            "8.0.0+driver/x86_64/SHA256SUMS.asc".to_owned()
        )]
    );

    // One flipped byte: named, as a file and through a URL.
    let at = damage(&probe);
    let (code, v, _) = check(r, &[]);
    assert_eq!(code, 1);
    assert_eq!(problems(&v), [("digest".to_owned(), name.clone())]);
    let server = Server::start(repo.clone());
    let (code, v, err) = check(&server.base, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(problems(&v), [("digest".to_owned(), name.clone())]);
    fs::write(&probe, &original).unwrap();
    let (code, v, _) = check(&server.base, &["--keyring", keyring]);
    assert_eq!(code, 0, "{v}");
    drop(server);

    // Missing.
    let away = t.path().join("away.o");
    fs::rename(&probe, &away).unwrap();
    let (code, v, _) = check(r, &[]);
    assert_eq!(code, 1);
    assert_eq!(problems(&v), [("missing".to_owned(), name.clone())]);
    fs::rename(&away, &probe).unwrap();

    // Unlisted.
    let stray = "8.0.0+driver/x86_64/falco_debian_9.9.9-stray_1.o";
    fs::write(repo.join(stray), b"not a probe").unwrap();
    let (code, v, _) = check(r, &[]);
    assert_eq!(code, 1);
    assert_eq!(problems(&v), [("unlisted".to_owned(), stray.to_owned())]);
    fs::remove_file(repo.join(stray)).unwrap();

    // A stale index: one with another digest, and one from before the probe was published.
    let index_path = repo.join("index.json");
    let index = fs::read_to_string(&index_path).unwrap();
    let sha = sha256_file(&probe);
    fs::write(&index_path, index.replace(&sha, &"0".repeat(64))).unwrap();
    let (code, v, _) = check(r, &[]);
    assert_eq!(code, 1);
    assert_eq!(problems(&v), [("stale-index".to_owned(), name.clone())]);
    fs::write(
        &index_path,
        r#"{"format": "probeforge-index-1", "probes": []}"#,
    )
    .unwrap();
    let (code, v, _) = check(r, &[]);
    assert_eq!(code, 1);
    assert_eq!(problems(&v), [("not-in-index".to_owned(), name.clone())]);
    fs::write(&index_path, &index).unwrap();
    let (code, _, _) = check(r, &[]);
    assert_eq!(code, 0);

    // build-all's fast path: a probe of another size than index.json says is not counted as
    // published; the recorded bytes (from the compile cache) take its place, the damaged
    // file is kept aside.
    let mut longer = original.clone();
    longer.push(0);
    fs::write(&probe, &longer).unwrap();
    let (code, out, err) = build_all();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kernels"][0]["status"], "cached", "{v}");
    assert_eq!(fs::read(&probe).unwrap(), original);
    let aside = repo
        .join(".probeforge/aside")
        .join(format!("{name}@{}", probeforge::base::sha256(&longer)));
    assert_eq!(fs::read(&aside).unwrap(), longer);
    assert!(gpg_verifies());

    // --repair: a flipped byte (same size, so the fast path cannot see it), rebuilt for real
    // (no compile cache) from the recorded inputs, back to the original bytes.
    damage(&probe);
    let damaged = fs::read(&probe).unwrap();
    fs::remove_dir_all(cache.join("probes")).unwrap();
    let (code, out, err) = run_in(&cache, &["check", "--repo", r, "--repair", "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["found"][0]["kind"], "digest", "{v}");
    assert_eq!(v["repairs"][0]["action"], "restored", "{v}");
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(fs::read(&probe).unwrap(), original);
    let aside = repo
        .join(".probeforge/aside")
        .join(format!("{name}@{}", probeforge::base::sha256(&damaged)));
    assert_eq!(fs::read(&aside).unwrap(), damaged, "byte {at} kept aside");
    assert!(cache.join("probes").is_dir(), "it was compiled again");
    let (code, _, err) = check(r, &["--keyring", keyring]);
    assert_eq!(code, 0, "{err}");
    assert!(gpg_verifies());

    // Usage: --repair on a URL, a repository that is not there.
    let (code, _, err) = run(&["check", "--repo", "http://127.0.0.1:1/x", "--repair"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["check", "--repo", t.path().join("nope").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
}
