//! build-all on real Debian kernels of two suites and both architectures: an empty repository,
//! a second run that builds nothing, a killed run resumed to the same result, conflicts, and
//! `exists` against a directory and an HTTP base URL.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::*;
use probeforge::kernel::Arch;

fn build_all_cmd(repo: &Path, only: &str, cache: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(build_all_args(
        &["debian-bullseye", "debian-bookworm"],
        only,
        repo,
    ))
    .env("PROBEFORGE_CACHE", cache)
    .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

fn build_all(
    repo: &Path,
    only: &str,
    cache: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let o = build_all_cmd(repo, only, cache)
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The kernels' statuses of a `--json` run, in order.
fn statuses(v: &serde_json::Value) -> Vec<String> {
    v["kernels"]
        .as_array()
        .unwrap_or_else(|| panic!("no kernels in {v}"))
        .iter()
        .map(|k| k["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// What a published repository must be at every moment: no temporary or partial files (the
/// `.probeforge/` metadata directory aside), every
/// probe in its directory's SHA256SUMS with its file's digest and nothing else there, and
/// index.json listing exactly the probes present, each with its file's digest. Returns the
/// number of probes.
fn consistent(repo: &Path) -> usize {
    let mut probes = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(repo).into_iter().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = e.path().strip_prefix(repo).unwrap().display().to_string();
        // `.probeforge/` at the top holds each probe's metadata (written before the probe);
        // nothing else may start with a dot (temp files are `.probeforge-*`).
        let meta_dir = rel == ".probeforge";
        assert!(
            meta_dir
                || (!name.starts_with('.') && !name.ends_with(".tmp") && !name.ends_with(".part")),
            "partial file left in the repository: {rel}"
        );
        if e.file_type().is_file() && name.ends_with(".o") {
            probes.insert(rel, sha256_file(e.path()));
        }
    }
    // SHA256SUMS: per directory, exactly its probes.
    let mut dirs: Vec<_> = probes
        .keys()
        .map(|p| Path::new(p).parent().unwrap().to_owned())
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let sums = fs::read_to_string(repo.join(d).join("SHA256SUMS")).unwrap();
        let mut listed: Vec<(String, String)> = sums
            .lines()
            .map(|l| {
                let (h, f) = l
                    .split_once("  ")
                    .unwrap_or_else(|| panic!("SHA256SUMS line {l:?}"));
                (d.join(f).display().to_string(), h.to_owned())
            })
            .collect();
        listed.sort();
        let present: Vec<(String, String)> = probes
            .iter()
            .filter(|(p, _)| Path::new(p).parent() == Some(d.as_path()))
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect();
        assert_eq!(listed, present, "{}/SHA256SUMS", d.display());
    }
    if probes.is_empty() {
        return 0;
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    let mut indexed: Vec<(String, String)> = index["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let path = p["path"].as_str().unwrap().replace("%2B", "+");
            (path, p["sha256"].as_str().unwrap().to_owned())
        })
        .collect();
    indexed.sort();
    let present: Vec<(String, String)> = probes.into_iter().collect();
    assert_eq!(indexed, present, "index.json against the files");
    present.len()
}

/// One 5.10 amd64 kernel of bullseye and one 6.1 arm64 kernel of bookworm.
fn selection() -> String {
    let (a, _) = debian_kernel("bullseye", Arch::X86_64);
    let (b, _) = debian_kernel("bookworm", Arch::Aarch64);
    format!(
        "^({}|{})$",
        regex::escape(&a.release),
        regex::escape(&b.release)
    )
}

#[test]
fn nightly_run_then_nothing_to_do_then_resume_after_kill() {
    let only = selection();
    let t = tmpdir();
    let repo = t.path().join("repo");
    // A cache without compiled probes: both are built, not taken from a cache.
    let cache = fresh_cache(&t.path().join("cache"));
    let (code, v, err) = build_all(&repo, &only, &cache, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(statuses(&v), ["built", "built"], "{v}");
    assert_eq!(
        (v["built"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    let kernels = v["kernels"].as_array().unwrap();
    let arches: Vec<&str> = kernels
        .iter()
        .map(|k| k["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["x86_64", "aarch64"]);
    for k in kernels {
        let p = repo
            .join("8.0.0+driver")
            .join(k["arch"].as_str().unwrap())
            .join(k["file"].as_str().unwrap());
        assert_eq!(sha256_file(&p), k["sha256"].as_str().unwrap());
    }
    assert_eq!(consistent(&repo), 2);
    let sums = fs::read_to_string(repo.join("8.0.0+driver/aarch64/SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 1);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    let probes = index["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 2);
    for p in probes {
        assert_eq!(p["built_at"], "2023-11-14T22:13:20Z", "{p}");
        assert_eq!(p["inputs"].as_array().map(Vec::len), Some(2), "{p}");
    }
    assert!(probes[0]["path"]
        .as_str()
        .unwrap()
        .starts_with("8.0.0%2Bdriver/"));
    assert!(fs::read_to_string(repo.join("INDEX.md"))
        .unwrap()
        .contains("aarch64"));
    let first = tree(&repo);

    // The next night: nothing new, nothing built, nothing changed.
    let start = Instant::now();
    let (code, v, err) = build_all(&repo, &only, &cache, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(statuses(&v), ["skipped", "skipped"], "{v}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(tree(&repo), first);

    // A run killed in the middle of its second probe's compile, by design: clang is a wrapper
    // that, at the second probe.c, leaves a marker and sleeps until killed.
    let repo2 = t.path().join("repo2");
    let cache2 = fresh_cache(&t.path().join("cache2"));
    let hook = t.path().join("hook");
    fs::create_dir_all(&hook).unwrap();
    let wrapper = hook.join("clang");
    let real_clang = which("clang");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do\n\
             \tcase \"$a\" in\n\
             \t*/probe.c|probe.c)\n\
             \t\tif ! mkdir '{h}/first' 2>/dev/null; then touch '{h}/second-started'; exec sleep 600; fi;;\n\
             \tesac\n\
             done\n\
             exec '{clang}' \"$@\"\n",
            h = hook.display(),
            clang = real_clang.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = build_all_cmd(&repo2, &only, &cache2)
        .args(["-j", "1"])
        .env("CLANG", &wrapper)
        .env("LLC", which("llc"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !hook.join("second-started").exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("build-all ended ({st}) before its second compile was held");
        }
        assert!(
            Instant::now() < deadline,
            "the second probe.c compile never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The whole group: probeforge and the wrapper's sleep.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    assert!(hook.join("first").is_dir());
    // Cut short: fewer probes published than kernels, and what is there is whole.
    let published = consistent(&repo2);
    assert!(published < 2, "the killed run published {published} probes");
    // Resumed with the real clang: the repository an uninterrupted run gives.
    let (code, v, err) = build_all(&repo2, &only, &cache2, &[]);
    assert_eq!(code, 0, "{err}");
    let st = statuses(&v);
    assert_eq!(st.len(), 2, "{v}");
    assert_eq!(
        st.iter().filter(|s| *s == "built").count(),
        2 - published,
        "resume builds exactly what was missing: {v}"
    );
    assert_eq!(consistent(&repo2), 2);
    assert_eq!(tree(&repo2), first);
}

fn which(cmd: &str) -> std::path::PathBuf {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd} not on PATH");
    std::path::PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

#[test]
fn published_probes_are_never_replaced() {
    use probeforge::publish::{LocalRepo, ProbeMeta, Published};
    let t = tmpdir();
    let repo = LocalRepo::new(t.path());
    let mut meta = ProbeMeta {
        driver_version: "8.0.0+driver".into(),
        arch: "x86_64".into(),
        target_id: "debian".into(),
        kernel_release: "6.1.0-1-amd64".into(),
        kernel_version: "1".into(),
        file: "falco_debian_6.1.0-1-amd64_1.o".into(),
        size: 3,
        sha256: probeforge::base::sha256(b"one"),
        inputs: vec![],
        driver_source_sha256: "x".into(),
        patches: vec![],
        toolchain: "t".into(),
        flags_sha256: "f".into(),
        built_at: "2023-11-14T22:13:20Z".into(),
        unsigned_metadata: false,
        verified: None,
        signed_by: None,
    };
    assert_eq!(repo.publish(&meta, b"one").unwrap(), Published::New);
    assert_eq!(repo.publish(&meta, b"one").unwrap(), Published::Unchanged);
    meta.sha256 = probeforge::base::sha256(b"two");
    let e = repo.publish(&meta, b"two").unwrap_err().to_string();
    assert!(
        e.contains("conflict") && e.contains("never replaced"),
        "{e}"
    );
    assert_eq!(
        fs::read(repo.probe_path("8.0.0+driver", "x86_64", &meta.file)).unwrap(),
        b"one"
    );
    assert_eq!(repo.reindex().unwrap(), 1);
}

#[test]
fn exists_answers_for_a_directory_and_a_url() {
    let t = tmpdir();
    let dir = t.path().join("8.0.0+driver/x86_64");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("falco_debian_6.12.57+deb13-amd64_1.o"), b"x").unwrap();
    let server = Server::start(t.path().to_owned());
    for repo in [t.path().to_str().unwrap().to_owned(), server.base.clone()] {
        let args = |rel: &str| -> Vec<String> {
            [
                "exists",
                "--repo",
                &repo,
                "--driver-version",
                "8.0.0+driver",
                "--target-id",
                "debian",
                "--kernel-release",
                rel,
                "--kernel-version",
                "1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let a: Vec<String> = args("6.12.57+deb13-amd64");
        let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{repo}: {err}");
        let a: Vec<String> = args("6.12.58+deb13-amd64");
        let (code, _, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 1, "{repo}");
    }
    // The URL form escaped the `+` as Falco's loaders do.
    assert!(server
        .all_hits()
        .keys()
        .any(|p| p.contains("8.0.0%2Bdriver") && p.contains("%2Bdeb13")));
    let (code, _, _) = run(&[
        "exists",
        "--repo",
        "http://127.0.0.1:1/x",
        "--driver-version",
        "v",
        "--target-id",
        "debian",
        "--kernel-release",
        "r",
        "--kernel-version",
        "1",
    ]);
    assert_eq!(code, 2);
}

#[test]
fn github_releases_repository_over_its_rest_api() {
    let gh = common::github::GitHub::start("falco", "probes", "s3cret");
    let (k, _) = debian_kernel("bullseye", Arch::X86_64);
    let only = format!("^{}$", regex::escape(&k.release));
    let t = tmpdir();
    let src = libs_0_20_0();
    let run_it = |token: &str| {
        Command::new(bin())
            .args([
                "build-all",
                "debian-bullseye",
                "--arch",
                "x86_64",
                "--only",
                &only,
                "--repo",
                "github:falco/probes",
                "--output",
                t.path().join("staging").to_str().unwrap(),
                "--driver-source",
                src.to_str().unwrap(),
                "--driver-version",
                "8.0.0+driver",
                "--json",
            ])
            .env("PROBEFORGE_CACHE", cache_dir())
            .env("PROBEFORGE_GITHUB_API", &gh.base)
            .env("GITHUB_TOKEN", token)
            .output()
            .unwrap()
    };
    // A bad token: the upload fails, named, and the run says so.
    let o = run_it("wrong");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["kernels"][0]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 401"),
        "{v}"
    );
    let o = run_it("s3cret");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    {
        let s = gh.state.lock().unwrap();
        let (_, assets) = &s.releases["8.0.0+driver"];
        let name = format!("x86_64_{}", falco_file(&k, "o"));
        let staged = t
            .path()
            .join("staging/8.0.0+driver/x86_64")
            .join(falco_file(&k, "o"));
        assert_eq!(assets[&name], fs::read(staged).unwrap());
    }
    // Published there: the next run skips it.
    let o = run_it("s3cret");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["skipped"], 1, "{v}");
}
