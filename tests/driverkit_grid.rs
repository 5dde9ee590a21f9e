//! Falco's own driverkit grid, as written: twelve Debian configs of falcosecurity/test-infra
//! (`tests/data/driverkit-grid`, three driver versions, both arches, source path and commit
//! in its README), each URL's host moved to this machine's Debian mirror and nothing else
//! changed. Every config resolves against the signed listing (`--plan`), every rotten
//! `linux-kbuild-*` pin replaced and named; a slice builds to exactly its output paths
//! (`build-all --driverkit-configs`, `build -c`); the grid goes on past a batch that cannot
//! start (7.0.0+driver's source is not to be had here); a config's `driverversion` that
//! contradicts its folder is refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::kernel::Arch;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/driverkit-grid")
}

/// This machine's Debian mirror, as its archive and security bases (what comes before
/// `/pool/` in the listing's own URLs).
fn mirror_bases() -> (String, String) {
    let listed = lister().list("debian", &[Arch::X86_64]).unwrap();
    let base = |security: bool| {
        listed
            .iter()
            .flat_map(|k| &k.packages)
            .map(|p| &p.url)
            .find(|u| u.contains("/pool/updates/") == security)
            .and_then(|u| u.split_once("/pool/"))
            .map(|(b, _)| b.to_owned())
            .expect("the listing has archive and security URLs")
    };
    (base(false), base(true))
}

/// A config's text with each URL's host (all before `/pool/`) moved to the mirror's base.
fn moved(text: &str, (main, security): &(String, String)) -> String {
    let re = regex::Regex::new(r"(?m)^(\s*- )\S+?(/pool/\S+)$").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let base = match c[2].starts_with("/pool/updates/") {
            true => security,
            false => main,
        };
        format!("{}{base}{}", &c[1], &c[2])
    })
    .into_owned()
}

/// The grid copied under `dst` with its URLs moved; returns its root and its config files
/// (relative paths, sorted).
fn moved_grid(dst: &Path) -> (PathBuf, Vec<PathBuf>) {
    let bases = mirror_bases();
    let root = dst.join("grid");
    let mut files = Vec::new();
    for v in fs::read_dir(data()).unwrap() {
        let v = v.unwrap().path();
        if !v.is_dir() {
            continue;
        }
        for a in fs::read_dir(&v).unwrap() {
            for f in fs::read_dir(a.unwrap().path()).unwrap() {
                let f = f.unwrap().path();
                let rel = f.strip_prefix(data()).unwrap().to_owned();
                let to = root.join(&rel);
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                let text = fs::read_to_string(&f).unwrap();
                let m = moved(&text, &bases);
                // Only hosts change: the same lines, each URL's path kept.
                assert_eq!(m.lines().count(), text.lines().count());
                fs::write(&to, m).unwrap();
                files.push(rel);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    (root, files)
}

fn config(path: &Path) -> probeforge::driverkit::Config {
    probeforge::driverkit::parse(&fs::read(path).unwrap())
        .unwrap()
        .config
}

/// Runs probeforge in `dir` (a config's relative output paths land under it).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("PROBEFORGE_CACHE", cache_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_config_of_the_grid_resolves_against_the_signed_listing_its_rotten_kbuild_replaced() {
    let t = tmpdir();
    let (grid, files) = moved_grid(t.path());
    let root = t.path().join("root");
    let (code, out, err) = run(&[
        "build-all",
        "--driverkit-configs",
        grid.to_str().unwrap(),
        "--output-root",
        root.to_str().unwrap(),
        "--plan",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("unauthenticated"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["refused"].as_array().unwrap().len(), 0, "{v}");
    let planned = v["configs"].as_array().unwrap();
    assert_eq!(planned.len(), files.len(), "{v}");
    let listed = lister()
        .list("debian", &[Arch::X86_64, Arch::Aarch64])
        .unwrap();
    for rel in &files {
        let path = grid.join(rel);
        let c = config(&path);
        let p = planned
            .iter()
            .find(|p| p["config"] == path.display().to_string())
            .unwrap_or_else(|| panic!("{} not planned: {v}", rel.display()));
        let folder = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        // The folder's driver version (the configs have none), Falco's name for the kernel,
        // the config's own outputs.
        assert_eq!(c.driverversion, None);
        assert_eq!(p["driver_version"], folder, "{p}");
        assert_eq!(p["file_release"], c.kernelrelease.as_str(), "{p}");
        let outputs: Vec<&str> = [&c.output.probe, &c.output.module]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let planned_outputs: Vec<&str> = p["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(planned_outputs, outputs, "{p}");
        // Every package is the signed listing's, with its digest: the kernel's own.
        let k = listed
            .iter()
            .find(|k| k.release == p["release"] && k.file_release() == c.kernelrelease)
            .unwrap_or_else(|| panic!("{p} is no listed kernel"));
        for pkg in p["packages"].as_array().unwrap() {
            let name = pkg["name"].as_str().unwrap();
            let own = k.packages.iter().find(|q| q.name == name).unwrap();
            assert_eq!(pkg["sha256"], own.sha256.as_str(), "{pkg}");
            assert_eq!(pkg["url"], own.url.as_str(), "{pkg}");
        }
        // The pinned kbuild is gone from the pool: replaced by the listing's of its series,
        // named with both versions.
        let pinned = c
            .kernelurls
            .iter()
            .find(|u| u.contains("/linux-kbuild-"))
            .unwrap();
        let file = pinned.rsplit('/').next().unwrap();
        let (name, version) = probeforge::driverkit::deb_name_version(file).unwrap();
        let r = v["replaced"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["config"] == path.display().to_string())
            .unwrap_or_else(|| panic!("no replacement named for {}: {v}", rel.display()));
        let own = k.packages.iter().find(|q| q.name == name).unwrap();
        assert_eq!(r["package"], name, "{r}");
        assert_eq!(r["pinned_version"], version.as_str(), "{r}");
        assert_eq!(r["version"], own.version.as_str(), "{r}");
        assert_ne!(own.version, version);
        assert!(
            err.contains(&format!("`{name}` {version} (")) && err.contains(&own.version),
            "{err}"
        );
    }
}

#[test]
fn the_grid_builds_as_written_and_goes_on_past_a_batch_that_cannot_start() {
    let t = tmpdir();
    let (grid, _) = moved_grid(t.path());
    let root = t.path().join("root");
    // One kernel, three driver versions: 7.0.0+driver's source is not to be had here.
    let slice = [
        "--driver",
        "ebpf",
        "--arch",
        "amd64",
        "--only",
        r"^5\.10\.223-1-",
        "--json",
    ];
    let mut args = vec![
        "build-all",
        "--driverkit-configs",
        grid.to_str().unwrap(),
        "--output-root",
        root.to_str().unwrap(),
    ];
    args.extend(slice);
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Built now, or taken from the compile cache (the same compiler input, built before).
    let ok = |s: &str| v[s].as_u64().unwrap();
    assert_eq!(ok("built") + ok("cached") + ok("unchanged"), 2, "{v}");
    assert_eq!(v["failed"], 1, "{v}");
    let failed = v["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "failed")
        .unwrap();
    assert!(
        failed["file"]
            .as_str()
            .unwrap()
            .ends_with("7.0.0+driver/x86_64/debian_5.10.223-1-amd64_1.yaml"),
        "{failed}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains("7.0.0+driver"),
        "{failed}"
    );
    // Exactly the configs' output paths, each the probe of its folder's driver version.
    let mut written = Vec::new();
    for v in ["8.0.0+driver", "9.1.0+driver"] {
        let c = config(&grid.join(format!("{v}/x86_64/debian_5.10.223-1-amd64_1.yaml")));
        let p = root.join(c.output.probe.as_ref().unwrap());
        let (code, out, err) = run(&[
            "validate",
            p.to_str().unwrap(),
            "--kernel-release",
            "5.10.0-32-amd64",
            "--driver-version",
            v,
        ]);
        assert_eq!(code, 0, "{}: {out}\n{err}", p.display());
        written.push(p);
    }
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            match p.is_dir() {
                true => stack.push(p),
                false => found.push(p),
            }
        }
    }
    found.sort();
    written.sort();
    assert_eq!(found, written);

    // Into a repository: published under exactly the configs' output names.
    let repo = t.path().join("repo");
    let mut args = vec![
        "build-all",
        "--driverkit-configs",
        grid.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
    ];
    args.extend(slice);
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    for v in ["8.0.0+driver", "9.1.0+driver"] {
        let c = config(&grid.join(format!("{v}/x86_64/debian_5.10.223-1-amd64_1.yaml")));
        let name = Path::new(c.output.probe.as_ref().unwrap())
            .file_name()
            .unwrap()
            .to_owned();
        let p = repo.join(v).join("x86_64").join(&name);
        let built = root.join(c.output.probe.as_ref().unwrap());
        assert_eq!(sha256_file(&p), sha256_file(&built), "{}", p.display());
    }
}

#[test]
fn build_c_builds_a_config_as_written_with_its_rotten_kbuild_replaced_and_named() {
    let t = tmpdir();
    let (grid, _) = moved_grid(t.path());
    let rel = "9.1.0+driver/x86_64/debian_5.10.218-1-amd64_1.yaml";
    let path = grid.join(rel);
    let c = config(&path);
    let work = t.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let (code, out, said) = run_in(&work, &["build", "-c", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}\n{said}");
    // Both outputs, where the config says (relative to where it runs).
    let probe = work.join(c.output.probe.as_ref().unwrap());
    let module = work.join(c.output.module.as_ref().unwrap());
    assert!(probe.is_file() && module.is_file(), "{out}\n{said}");
    let (code, _, err) = run(&[
        "validate",
        probe.to_str().unwrap(),
        "--kernel-release",
        "5.10.0-30-amd64",
        "--driver-version",
        "9.1.0+driver",
    ]);
    assert_eq!(code, 0, "{err}");
    // The pinned kbuild 5.10.247-1 is gone: the listing's of its series built the module,
    // named in the output and in --json.
    let listed = lister().list("debian", &[Arch::X86_64]).unwrap();
    let k = listed
        .iter()
        .find(|k| k.release == "5.10.0-30-amd64")
        .unwrap();
    let kbuild = k
        .packages
        .iter()
        .find(|p| p.name == "linux-kbuild-5.10")
        .unwrap();
    // Said once (the probe does not read kbuild), naming both versions.
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("`linux-kbuild-5.10` 5.10.247-1"))
        .collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].contains(&kbuild.version), "{said}");
    let reports: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let named = reports
        .iter()
        .filter_map(|r| r["replaced"].as_array())
        .flatten()
        .find(|r| r["package"] == "linux-kbuild-5.10")
        .unwrap_or_else(|| panic!("no replacement in --json: {out}"));
    assert_eq!(named["pinned_version"], "5.10.247-1", "{named}");
    assert_eq!(named["version"], kbuild.version.as_str(), "{named}");
    assert_eq!(named["url"], kbuild.url.as_str(), "{named}");
}

/// `build-all --driverkit-configs GRID <dest_flag> DEST --plan --json`, which must exit 1 and
/// refuse some configs: the plan and its refusals.
fn plan_refusing(
    grid: &Path,
    dest_flag: &str,
    dest: &Path,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let (code, out, err) = run(&[
        "build-all",
        "--driverkit-configs",
        grid.to_str().unwrap(),
        dest_flag,
        dest.to_str().unwrap(),
        "--plan",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let refused = v["refused"].as_array().unwrap().clone();
    assert!(!refused.is_empty(), "{v}");
    (v, refused)
}

#[test]
fn a_driverversion_that_contradicts_its_folder_is_refused_naming_both() {
    let t = tmpdir();
    let (grid, _) = moved_grid(t.path());
    let rel = "8.0.0+driver/x86_64/debian_5.10.223-1-amd64_1.yaml";
    let path = grid.join(rel);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("driverversion: 9.1.0+driver\n");
    fs::write(&path, text).unwrap();
    let (code, out, err) = run_in(t.path(), &["build", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}\n{err}");
    let line = err
        .lines()
        .find(|l| l.contains("contradicts"))
        .unwrap_or_default();
    assert!(
        line.contains("`9.1.0+driver`") && line.contains("`8.0.0+driver`"),
        "{err}"
    );
    // In the grid: that config refused, naming both; the others planned.
    let (v, refused) = plan_refusing(&grid, "--output-root", &t.path().join("root"));
    for r in &refused {
        let e = r["error"].as_str().unwrap();
        assert!(
            r["file"].as_str().unwrap().ends_with(rel)
                && e.contains("`9.1.0+driver`")
                && e.contains("`8.0.0+driver`"),
            "{r}"
        );
    }
    assert!(!v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["config"].as_str().unwrap().ends_with(rel)));
}

/// Into a repository a file is published under Falco's name for its kernel: a config whose
/// output names another file is refused naming both, the others planned.
#[test]
fn into_a_repository_an_output_name_that_is_not_falcos_is_refused_naming_both() {
    let t = tmpdir();
    let (grid, files) = moved_grid(t.path());
    let rel = "8.0.0+driver/x86_64/debian_5.10.223-1-amd64_1.yaml";
    let path = grid.join(rel);
    let text = fs::read_to_string(&path).unwrap();
    // `uname -r` where Falco's loader asks for the package version.
    let renamed = text.replace(
        "falco_debian_5.10.223-1-amd64_1.o",
        "falco_debian_5.10.0-32-amd64_1.o",
    );
    assert_ne!(renamed, text);
    fs::write(&path, renamed).unwrap();
    let (v, refused) = plan_refusing(&grid, "--repo", &t.path().join("repo"));
    for r in &refused {
        let e = r["error"].as_str().unwrap();
        assert!(r["file"].as_str().unwrap().ends_with(rel), "{r}");
        assert!(
            e.contains("`falco_debian_5.10.0-32-amd64_1.o`")
                && e.contains("`falco_debian_5.10.223-1-amd64_1.o`"),
            "{r}"
        );
    }
    assert_eq!(
        v["configs"].as_array().unwrap().len(),
        files.len() - 1,
        "{v}"
    );
}
