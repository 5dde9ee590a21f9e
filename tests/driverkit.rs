//! driverkit's configs, end to end on real Debian kernels (their URLs on this machine's APT
//! mirror): configs written by `list-kernels --format driverkit`, built one by one
//! (`build -c`) and as a grid of two driver versions and both arches (`build-all
//! --driverkit-configs`), into the same bytes as `build-all` over the same kernels; output
//! paths as written; `kernelconfigdata`; driverkit's flag names; a URL on another host naming
//! the listing's file (fetched from the listing's mirror); and the refusals: a missing
//! `-common`, an unauthenticated URL under `--require-verified`. Falco's own grid as written:
//! `tests/driverkit_grid.rs`.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::fs;
use std::path::{Path, PathBuf};

use common::server::Server;
use common::*;
use probeforge::driverkit::{self, Config};
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

const V8: &str = "8.0.0+driver";
const V9: &str = "9.1.0+driver";

/// `list-kernels debian-bookworm --format driverkit -o DIR` for both driver versions.
fn configs_out(dir: &Path) {
    let (code, out, err) = run(&[
        "list-kernels",
        "debian-bookworm",
        "--format",
        "driverkit",
        "-o",
        &dir.display().to_string(),
        "--driver-version",
        &format!("{V8},{V9}"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() > 4, "{out}");
}

/// The config (3) wrote for a kernel and version, read back.
fn written(dir: &Path, k: &KernelRecord, v: &str) -> (PathBuf, Config) {
    let c = Config {
        kernelrelease: k.release.clone(),
        kernelversion: k.kernel_version.clone(),
        target: k.target_id.clone(),
        ..Config::default()
    };
    let p = dir.join(driverkit::grid_path(&c, v, k.arch));
    let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let parsed = driverkit::parse(&bytes).unwrap();
    assert!(parsed.unknown.is_empty());
    (p, parsed.config)
}

fn write_config(p: &Path, c: &Config) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, driverkit::to_yaml(c)).unwrap();
}

/// The probe only (the grid's configs name both outputs: a module build is not what these
/// tests time).
fn probe_only(mut c: Config) -> Config {
    c.output.module = None;
    c
}

fn digests(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in [V8, V9] {
        for a in ["x86_64", "aarch64"] {
            let d = root.join(v).join(a);
            for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|e| e == "o") {
                    let name = p.strip_prefix(root).unwrap().display().to_string();
                    out.push((name, sha256_file(&p)));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn configs_written_build_through_c_and_the_grid_into_build_alls_bytes() {
    let t = tmpdir();
    let (amd, _) = debian_kernel("bookworm", Arch::X86_64);
    let (arm, _) = debian_kernel("bookworm", Arch::Aarch64);
    // Both drivers' known copies in the cache (each version's source is fetched by digest).
    libs_0_20_0();
    drivers::scap_dkms_0_23_2();
    let all = t.path().join("all");
    configs_out(&all);
    // The grid: two driver versions, both arches, as (3) wrote them (probe outputs only).
    let grid = t.path().join("grid");
    for v in [V8, V9] {
        for k in [&amd, &arm] {
            let (p, c) = written(&all, k, v);
            assert_eq!(c.driverversion.as_deref(), Some(v));
            assert!(
                c.kernelurls.iter().any(|u| u.contains("-common_")),
                "{:?}",
                c.kernelurls
            );
            assert!(
                c.kernelurls.iter().any(|u| u.contains("linux-kbuild-")),
                "{:?}",
                c.kernelurls
            );
            write_config(&grid.join(p.strip_prefix(&all).unwrap()), &probe_only(c));
        }
    }
    // build-all over the same kernels, one run per driver version.
    let reference = t.path().join("reference");
    let only = format!(
        "^({}|{})$",
        regex::escape(&amd.release),
        regex::escape(&arm.release)
    );
    for v in [V8, V9] {
        let (code, out, err) = run(&[
            "build-all",
            "debian-bookworm",
            "--only",
            &only,
            "--repo",
            &reference.display().to_string(),
            "--driver-version",
            v,
            "--json",
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let want = digests(&reference);
    assert_eq!(want.len(), 4, "{want:?}");

    // (2) into a repository: Falco's layout, the same bytes.
    let repo = t.path().join("repo");
    let grid_args = |extra: &[&str]| {
        let mut a = vec![
            "build-all".to_owned(),
            "--driverkit-configs".into(),
            grid.display().to_string(),
            "--json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (code, out, err) = run(&grid_args(&["--repo", &repo.display().to_string()]));
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["kernels"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(digests(&repo), want);
    // What is published is skipped.
    let (code, out, _) = run(&grid_args(&["--repo", &repo.display().to_string()]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["skipped"], 4, "{v}");

    // (2) into the configs' own output paths, under a root: exactly as written.
    let root = t.path().join("root");
    let (code, out, err) = run(&grid_args(&["--output-root", &root.display().to_string()]));
    assert_eq!(code, 0, "{out}\n{err}");
    for v in [V8, V9] {
        for k in [&amd, &arm] {
            let (_, c) = written(&all, k, v);
            let p = root.join(c.output.probe.as_ref().unwrap());
            let name = format!("{v}/{}/{}", k.arch.uname_m(), falco_file(k, "o"));
            let expected = &want.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(&sha256_file(&p), expected, "{}", p.display());
        }
    }
    // Nothing but the outputs is left under the root.
    let mut left = Vec::new();
    for e in walk(&root) {
        left.push(e);
    }
    assert_eq!(left.len(), 4, "{left:?}");

    // (1) one config, written exactly at its output path.
    let (p, c) = written(&all, &amd, V8);
    let one = t.path().join("one.yaml");
    let mut c = probe_only(c);
    let dest = t.path().join("exact/place/probe.o");
    c.output.probe = Some(dest.display().to_string());
    write_config(&one, &c);
    let (code, out, err) = run(&["build", "-c", &one.display().to_string()]);
    assert_eq!(code, 0, "{}\n{out}\n{err}", p.display());
    let name = format!("{V8}/x86_64/{}", falco_file(&amd, "o"));
    let expected = &want.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(&sha256_file(&dest), expected);
    assert!(out.contains(&dest.display().to_string()), "{out}");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A hand-written config for a listed kernel: its packages' URLs as the listing gives them.
fn config_of(k: &KernelRecord, out: &Path) -> Config {
    let mut c = probeforge::command::driverkit::config_for(k, V8);
    c.output.module = None;
    c.output.probe = Some(out.display().to_string());
    c
}

#[test]
fn kernelconfigdata_unknown_keys_and_images_are_said_and_the_probe_is_built() {
    use base64::Engine;
    let t = tmpdir();
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    // The kernel's real .config, from its headers package.
    let staged =
        probeforge::extract::Staged::new(&files, probeforge::extract::Selection::ProbeBuild, None)
            .unwrap();
    let tree = probeforge::kernel::KernelTree::find(staged.root(), Some(&k.release)).unwrap();
    let dotconfig = fs::read(tree.objtree.join(".config")).unwrap();
    let dest = t.path().join("out/falco.o");
    let mut c = config_of(&k, &dest);
    c.kernelconfigdata = Some(base64::engine::general_purpose::STANDARD.encode(&dotconfig));
    c.builderimage = Some("docker.io/falcosecurity/driverkit-builder:latest".into());
    c.gccversion = Some("12".into());
    let p = t.path().join("k.yaml");
    let mut text = driverkit::to_yaml(&c);
    text.extend_from_slice(b"colour: blue\n");
    fs::write(&p, text).unwrap();
    let mut args = vec!["build".to_owned(), "-c".into(), p.display().to_string()];
    args.extend(driver_8_args());
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(dest.is_file());
    assert!(err.contains("does not know `colour`"), "{err}");
    assert!(err.contains("no builder images here"), "{err}");
    assert!(err.contains("the same `.config` as the headers'"), "{err}");
    // A .config that is not the headers' is said, naming an option.
    let mut other = dotconfig.clone();
    other.extend_from_slice(b"CONFIG_PROBEFORGE_TEST=y\n");
    c.kernelconfigdata = Some(base64::engine::general_purpose::STANDARD.encode(&other));
    fs::write(&p, driverkit::to_yaml(&c)).unwrap();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("CONFIG_PROBEFORGE_TEST"), "{err}");
}

#[test]
fn driverkits_flag_names_build_exactly_where_they_say() {
    let t = tmpdir();
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let dest = t.path().join("flags/probe.o");
    let urls: Vec<String> = k.packages.iter().map(|p| p.url.clone()).collect();
    let mut args: Vec<String> = [
        "build",
        "--target",
        "debian",
        "--kernelrelease",
        &k.release,
        "--kernelversion",
        &k.kernel_version,
        "--architecture",
        "amd64",
        "--kernelurls",
        &urls.join(","),
        "--output-probe",
        &dest.display().to_string(),
        "--driverversion",
        V8,
        "--driver-source",
        &libs_0_20_0().display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(dest.is_file());
    // The catalog way with driverkit's names: --target a catalog target, --kernelrelease.
    let dest2 = t.path().join("flags/catalog.o");
    args = [
        "build",
        "--target",
        "debian-bookworm",
        "--kernelrelease",
        &k.release,
        "--output-probe",
        &dest2.display().to_string(),
        "--driverversion",
        V8,
        "--driver-source",
        &libs_0_20_0().display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(sha256_file(&dest), sha256_file(&dest2));
}

#[test]
fn kernelurls_without_the_common_package_fail_naming_it() {
    let t = tmpdir();
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let mut c = config_of(&k, &t.path().join("x.o"));
    c.kernelurls.retain(|u| !u.contains("-common_"));
    let p = t.path().join("k.yaml");
    write_config(&p, &c);
    let mut args = vec!["build".to_owned(), "-c".into(), p.display().to_string()];
    args.extend(driver_8_args());
    let (code, _, err) = run(&args);
    assert_eq!(code, 2, "{err}");
    let common = k
        .packages
        .iter()
        .find(|p| p.name.ends_with("-common"))
        .unwrap();
    assert!(err.contains(&format!("`{}`", common.name)), "{err}");
    assert!(!t.path().join("x.o").exists());
}

/// A copy of the test cache (hard links) without one blob: its file is downloaded again.
fn cache_without(at: &Path, sha256: &str) -> PathBuf {
    assert!(std::process::Command::new("cp")
        .arg("-al")
        .arg(cache_dir())
        .arg(at)
        .status()
        .unwrap()
        .success());
    let blob = at.join("sha256").join(&sha256[..2]).join(sha256);
    let _ = fs::remove_file(blob);
    at.to_owned()
}

/// A URL on another host naming a file the signed listing names is the listing's package:
/// fetched from the listing's mirror and checked against its digest, whatever that host
/// serves (here: the file with one byte changed, never read).
#[test]
fn a_url_naming_the_listings_file_is_fetched_from_its_mirror_and_unknown_urls_need_consent() {
    let t = tmpdir();
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let headers = k
        .packages
        .iter()
        .position(|p| p.name == format!("linux-headers-{}", k.release))
        .unwrap();
    let name = k.packages[headers]
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // The same file name on a loopback server, one byte changed (same size).
    let served = t.path().join("served");
    fs::create_dir_all(served.join("pool")).unwrap();
    let mut bytes = fs::read(&files[headers]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(served.join("pool").join(&name), &bytes).unwrap();
    // And the true files under names no listing has.
    for (i, f) in files.iter().enumerate() {
        fs::copy(f, served.join(format!("unknown-{i}.deb"))).unwrap();
    }
    let srv = Server::start(served.clone());
    let out_file = t.path().join("x.o");
    let mut c = config_of(&k, &out_file);
    let other_url = format!("{}/pool/{name}", srv.base);
    c.kernelurls[headers] = other_url.clone();
    let p = t.path().join("elsewhere.yaml");
    write_config(&p, &c);
    let cache = cache_without(&t.path().join("cache"), &k.packages[headers].sha256);
    let mut args = vec![
        "--cache-dir".to_owned(),
        cache.display().to_string(),
        "build".into(),
        "-c".into(),
        p.display().to_string(),
    ];
    args.extend(driver_8_args());
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out_file.is_file());
    assert!(srv.hits(&format!("/pool/{name}")).is_empty(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(&other_url))
        .unwrap_or_default();
    assert!(line.contains(&k.packages[headers].url), "{err}");
    assert!(!err.contains("unauthenticated"), "{err}");
    // The blob the build fetched is the listing's bytes.
    let blob = cache
        .join("sha256")
        .join(&k.packages[headers].sha256[..2])
        .join(&k.packages[headers].sha256);
    assert_eq!(sha256_file(&blob), k.packages[headers].sha256);

    // URLs no catalog repository knows: refused with --require-verified...
    c.kernelurls = (0..files.len())
        .map(|i| format!("{}/unknown-{i}.deb", srv.base))
        .collect();
    let p = t.path().join("unknown.yaml");
    write_config(&p, &c);
    let mut args = vec!["build".to_owned(), "-c".into(), p.display().to_string()];
    args.extend(driver_8_args());
    let mut strict = args.clone();
    strict.push("--require-verified".into());
    let (code, _, err) = run(&strict);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown-0.deb"), "{err}");
    // ... else built, said in one line and recorded in the provenance.
    let prov = t.path().join("prov.json");
    args.extend(["--provenance".into(), prov.display().to_string()]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("unauthenticated"))
            .count(),
        1,
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&prov).unwrap()).unwrap();
    let meta = &v["predicate"]["repository_metadata"];
    assert_eq!(meta["signed"], false, "{v}");
    assert_eq!(
        meta["unauthenticated"].as_array().unwrap().len(),
        files.len(),
        "{v}"
    );
}

/// The public grid's Debian configs name the kernel as Falco's files do (`kernelrelease:
/// 6.1.176-1-amd64` for `uname -r` 6.1.0-50-amd64): such a config builds, for its kernel.
#[test]
fn a_config_naming_the_kernel_by_falcos_release_builds_it() {
    let t = tmpdir();
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    assert_ne!(k.file_release(), k.release);
    let dest = t.path().join("out/falco.o");
    let mut c = config_of(&k, &dest);
    c.kernelrelease = k.file_release();
    let p = t.path().join("k.yaml");
    write_config(&p, &c);
    let mut args = vec!["build".to_owned(), "-c".into(), p.display().to_string()];
    args.extend(driver_8_args());
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&[
        "validate",
        dest.to_str().unwrap(),
        "--kernel-release",
        &k.release,
        "--driver-version",
        V8,
    ]);
    assert_eq!(code, 0, "the probe of {}: {out}\n{err}", k.release);
}
