//! build-all on real Debian kernels of two suites and both architectures: an empty repository,
//! a second run that builds nothing, a killed run resumed to the same result, conflicts, and
//! `exists` against a directory and an HTTP base URL.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::*;
use probeforge::kernel::Arch;

fn build_all(repo: &Path, only: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let src = libs_0_20_0();
    let mut args = vec![
        "build-all",
        "debian-bullseye",
        "debian-bookworm",
        "--only",
        only,
        "--repo",
        repo.to_str().unwrap(),
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "--json",
    ];
    args.extend(extra);
    let o = Command::new(bin())
        .args(&args)
        .env("PROBEFORGE_CACHE", cache_dir())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
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

fn tree(repo: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(repo)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(repo).unwrap().display().to_string(),
                sha256_file(e.path()),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn nightly_run_then_nothing_to_do_then_resume_after_kill() {
    let only = selection();
    let t = tmpdir();
    let repo = t.path().join("repo");
    let (code, v, err) = build_all(&repo, &only, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["failed"], 0);
    let done = v["built"].as_u64().unwrap() + v["cached"].as_u64().unwrap();
    assert_eq!(done, 2, "{v}");
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
    let sums = fs::read_to_string(repo.join("8.0.0+driver/aarch64/SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 1);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    let probes = index["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 2);
    assert!(probes
        .iter()
        .all(|p| p["built_at"] == "2023-11-14T22:13:20Z"
            && p["inputs"].as_array().unwrap().len() == 2));
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
    let (code, v, err) = build_all(&repo, &only, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (v["skipped"].as_u64(), v["built"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(tree(&repo), first);

    // A run killed once its first probe is published, then run again: the same repository.
    let repo2 = t.path().join("repo2");
    let src = libs_0_20_0();
    let mut child = Command::new(bin())
        .args([
            "build-all",
            "debian-bullseye",
            "debian-bookworm",
            "--only",
            &only,
            "--repo",
            repo2.to_str().unwrap(),
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-j",
            "1",
        ])
        .env("PROBEFORGE_CACHE", t.path().join("fresh-cache"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env(
            "PROBEFORGE_MIRROR_DEBIAN",
            net().mirrors.resolve(&net().catalog, "debian").unwrap(),
        )
        .env(
            "PROBEFORGE_MIRROR_DEBIAN_SECURITY",
            net()
                .mirrors
                .resolve(&net().catalog, "debian-security")
                .unwrap(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let published = walkdir::WalkDir::new(&repo2)
            .into_iter()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".o")
                    && !e.file_name().to_string_lossy().starts_with('.')
            });
        if published || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, v, err) = build_all(&repo2, &only, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        v["skipped"].as_u64().unwrap()
            + v["built"].as_u64().unwrap()
            + v["cached"].as_u64().unwrap(),
        2,
        "{v}"
    );
    // Temp files of the killed run may remain in the tree; everything that counts is equal.
    let visible = |t: Vec<(String, String)>| {
        t.into_iter()
            .filter(|(p, _)| !p.rsplit('/').next().unwrap().starts_with(".probeforge-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(visible(tree(&repo2)), visible(first));
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
        sha256: probeforge::pipeline::sha256(b"one"),
        inputs: vec![],
        driver_source_sha256: "x".into(),
        patches: vec![],
        toolchain: "t".into(),
        flags_sha256: "f".into(),
        built_at: "2023-11-14T22:13:20Z".into(),
    };
    assert_eq!(repo.publish(&meta, b"one").unwrap(), Published::New);
    assert_eq!(repo.publish(&meta, b"one").unwrap(), Published::Unchanged);
    meta.sha256 = probeforge::pipeline::sha256(b"two");
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
        let name = format!("x86_64_falco_debian_{}_1.o", k.release);
        let staged = t
            .path()
            .join("staging/8.0.0+driver/x86_64")
            .join(format!("falco_debian_{}_1.o", k.release));
        assert_eq!(assets[&name], fs::read(staged).unwrap());
    }
    // Published there: the next run skips it.
    let o = run_it("s3cret");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["skipped"], 1, "{v}");
}
