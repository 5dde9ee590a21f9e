//! Every Falco driver release with a legacy probe, built as its own install lays it out: the
//! falcosecurity/libs archives in `../shared/drivers` (3.0.1, 4.0.0, 6.0.1, 7.0.0), Debian's
//! `falcosecurity-libs` orig tarball (8.0.0+driver) and its `falcosecurity-scap-dkms` packages
//! (the 2022 driver, 0.23.2 = 9.1.0+driver), on real Debian kernels. Each probe costs ~12 s of
//! CPU, so this is a slice (every layout once, every kernel line, both arches); the whole matrix
//! is `cargo bench --bench drivers`.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use drivers::*;
use probeforge::kernel::Arch;
use probeforge::releases::{Outcome, Table};

/// `probeforge build --json` of one driver source for header files; (exit code, JSON or stderr).
fn build(
    headers: &[PathBuf],
    driver: &Path,
    version: Option<&str>,
    out: &Path,
) -> (i32, serde_json::Value, String) {
    let mut a: Vec<String> = vec![
        "build".into(),
        "--json".into(),
        "--driver-source".into(),
        driver.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(v) = version {
        a.extend(["--driver-version".into(), v.into()]);
    }
    a.push("--headers".into());
    a.extend(headers.iter().map(|h| h.display().to_string()));
    let (code, stdout, stderr) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, v, stderr)
}

/// What `probeforge drivers` says of this cell is what the build did.
fn as_table_says(driver: &str, line: &str, arch: Arch, json: &serde_json::Value) {
    let patches: Vec<String> = json["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let built = Outcome::built(&patches);
    let table = Table::embedded();
    let want = table.expected(driver, line, arch).unwrap_or_else(|| {
        panic!("`probeforge drivers` has no cell for {driver} on {line} {arch}")
    });
    assert_eq!(
        want, &built,
        "{driver} on {line} {arch}: the table says `{want}`, the build `{built}`"
    );
}

/// The probe passes `probeforge validate` for its kernel, driver version and arch.
fn validated(v: &serde_json::Value, release: &str, driver: &str, arch: Arch) {
    let path = v["path"].as_str().expect("a probe path");
    let (code, stdout, stderr) = run(&[
        "validate",
        path,
        "--kernel-release",
        release,
        "--driver-version",
        driver,
        "--arch",
        arch.uname_m(),
    ]);
    assert_eq!(code, 0, "validate {path}:\n{stdout}{stderr}");
}

fn unpack(archive: &Path, into: &Path, deb: bool) {
    std::fs::create_dir_all(into).unwrap();
    let ok = if deb {
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(archive)
            .arg(into)
            .status()
    } else {
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into)
            .status()
    };
    assert!(ok.unwrap().success(), "unpacking {}", archive.display());
}

/// Every layout once on Debian 5.10: GitHub archives (parent-directory includes, up to
/// 7.0.0+driver), an unpacked libs tree under GitHub's `-driver` folder spelling, and an unpacked
/// dkms tree; each version read from the source itself.
#[test]
fn old_driver_layouts_build_as_installed_with_their_own_versions() {
    let (k, files) = debian_kernel("bullseye", Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    // 6.0.1 as a tree whose top folder has GitHub's spelling of the tag.
    let tree601 = t.path().join("src/libs-6.0.1-driver");
    unpack(&shared_driver("6.0.1+driver"), &t.path().join("src"), false);
    std::fs::rename(t.path().join("src/libs-6.0.1+driver"), &tree601).unwrap();
    // The 2022 dkms driver as the tree dkms installs.
    let dkms = t.path().join("dkms");
    unpack(&scap_dkms(), &dkms, true);
    let dkms_tree = std::fs::read_dir(dkms.join("usr/src"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let cases = [
        (shared_driver("3.0.1+driver"), "3.0.1+driver"),
        (shared_driver("4.0.0+driver"), "4.0.0+driver"),
        (tree601, "6.0.1+driver"),
        (shared_driver("7.0.0+driver"), "7.0.0+driver"),
        (dkms_tree, "0.1.1dev+git20220316.e5c53d64"),
    ];
    for (i, (src, v)) in cases.iter().enumerate() {
        let out = t.path().join(format!("out{i}"));
        let (code, json, stderr) = build(&headers, src, None, &out);
        assert_eq!(code, 0, "{v} on {}:\n{stderr}", k.release);
        assert_eq!(json["driver_version"], *v, "{}", src.display());
        validated(&json, &k.release, v, Arch::X86_64);
        as_table_says(v, "5.10", Arch::X86_64, &json);
    }
}

/// Debian's dkms 0.23.2 is libs 0.23.2, which Falco's loaders know as 9.1.0+driver (same API and
/// schema versions): the probe says so and would publish under `9.1.0+driver/`.
#[test]
fn dkms_0_23_2_builds_as_9_1_0_driver() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let (code, json, stderr) = build(&headers, &scap_dkms_0_23_2(), None, t.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["driver_version"], "9.1.0+driver");
    assert_eq!(json["driver_layout"], "dkms");
    validated(&json, &k.release, "9.1.0+driver", Arch::X86_64);
    as_table_says("9.1.0+driver", "6.1", Arch::X86_64, &json);
}

/// A version the catalog knows, given for a source that is another driver, is refused before
/// compiling, naming the source and both versions.
#[test]
fn a_driver_version_that_is_not_the_source_is_refused() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let src = libs_0_20_0();
    let (code, _, stderr) = build(&headers, &src, Some("9.1.0+driver"), t.path());
    assert_eq!(code, 1, "{stderr}");
    for want in [
        "API 8.0.3 and schema 3.5.0",
        "driver 9.1.0+driver has API 8.0.4 and schema 4.1.0",
        "libs-0.20.0",
    ] {
        assert!(stderr.contains(want), "`{want}` not in:\n{stderr}");
    }
}

/// No driver flag at all: the newest legacy driver, 9.1.0+driver, from Debian's dkms package
/// (a known copy, checked by digest), for the newest Debian kernel.
#[test]
fn no_driver_flag_builds_9_1_0_driver_for_the_latest_kernel() {
    let t = tmpdir();
    let out = t.path().join("out");
    let (code, stdout, stderr) = run(&[
        "build",
        "--target",
        "debian",
        "--kernel",
        "latest",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["driver_version"], "9.1.0+driver");
    let release = json["kernel"]["release"].as_str().unwrap();
    validated(&json, release, "9.1.0+driver", Arch::X86_64);
}

/// A driver that predates the kernel, bridged by driver-patches: 7.0.0+driver on Debian 7.x
/// (kernfs_node's `__parent`, inode times in seconds and nanoseconds).
#[test]
fn driver_7_0_0_builds_on_debian_7x_with_patches() {
    let (k, files) = debian_7x_kernel(Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let (code, json, stderr) = build(&headers, &shared_driver("7.0.0+driver"), None, t.path());
    assert_eq!(code, 0, "{stderr}");
    validated(&json, &k.release, "7.0.0+driver", Arch::X86_64);
    as_table_says("7.0.0+driver", "7.x", Arch::X86_64, &json);
}

/// The oldest Falco-pinned drivers on the newest Debian lines, bridged by driver-patches:
/// kernel_cap_t's single u64 (Linux 6.3), inode times in seconds and nanoseconds (6.11, 4.0.0),
/// mm's rss_stat array (6.2), kernfs_node's `__parent` (6.15) and the const d_name (6.18).
/// One arch per driver (3.0.1 amd64, 4.0.0 arm64, cross-built); the bench builds both.
#[test]
fn drivers_3_0_1_and_4_0_0_build_on_6_12_and_7x_with_patches() {
    for (driver, arch) in [
        ("3.0.1+driver", Arch::X86_64),
        ("4.0.0+driver", Arch::Aarch64),
    ] {
        for line in ["6.12", "7.x"] {
            let (k, files) = kernel_line(line, arch);
            let headers = header_files(&k, &files);
            let t = tmpdir();
            let (code, json, stderr) = build(&headers, &shared_driver(driver), None, t.path());
            assert_eq!(code, 0, "{driver} on {}:\n{stderr}", k.release);
            validated(&json, &k.release, driver, arch);
            as_table_says(driver, line, arch, &json);
        }
    }
}

/// A patched old-driver probe loads whole in its own kernel and its events decode with the
/// driver's own tables: 3.0.1+driver on Debian 7.x, where all four of its patches apply (the
/// const-d_name one rewrites the path walk the verifier checks).
#[test]
fn driver_3_0_1_probe_for_7x_loads_in_its_kernel() {
    let (k, files) = debian_7x_kernel(Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let src = shared_driver("3.0.1+driver");
    let (code, json, stderr) = build(&headers, &src, None, t.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        json["patches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "dentry-name-const-6.18.patch"),
        "{json}"
    );
    let probe = json["path"].as_str().unwrap();
    let (code, out, err) = run(&[
        "verify",
        "--json",
        "--target",
        &k.target,
        "--driver-source",
        src.to_str().unwrap(),
        probe,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let r = &v["reports"][0];
    assert_eq!(r["loaded"], r["programs"], "{r}");
    assert_eq!(r["events"]["ok"], true, "{r}");
    assert!(r["events"]["decoded"].as_u64().unwrap() >= 10, "{r}");
}

/// Four Falco-pinned drivers in one VM: the 4.0.0, 6.0.1 and 7.0.0+driver probes for Debian
/// 6.12 amd64 (each bridged by its driver-patches) and 9.1.0+driver (Debian's dkms 0.23.2),
/// booted once with their four sources. Every program of each loads and attaches, every map is
/// created, and the loader's workload is captured and decoded with that driver's own tables.
/// Each probe takes its own source: leaving any one source out is refused, naming that probe
/// alone.
#[test]
fn driver_releases_load_and_capture_events_in_one_vm() {
    let (k, files) = debian_kernel("trixie", Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    // The three oldest with patches for 6.12, and the newest (Debian's dkms 0.23.2 tree, whose
    // event tables include `syscall_compat.h` from its `bpf/`).
    let versions = [
        "4.0.0+driver",
        "6.0.1+driver",
        "7.0.0+driver",
        "9.1.0+driver",
    ];
    let sources: Vec<PathBuf> = versions
        .iter()
        .map(|v| match *v {
            "9.1.0+driver" => scap_dkms_0_23_2(),
            v => shared_driver(v),
        })
        .collect();
    // The builds at once: each clang and llc is single-threaded.
    let built: Vec<_> = std::thread::scope(|s| {
        let jobs: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, src)| {
                let out = t.path().join(format!("out{i}"));
                let headers = &headers;
                s.spawn(move || build(headers, src, None, &out))
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    // Every driver's probe has the same Falco file name: each goes in under its driver's.
    let mut probes = Vec::new();
    for (v, (code, json, stderr)) in versions.iter().zip(&built) {
        assert_eq!(code, &0, "{v} on {}:\n{stderr}", k.release);
        assert_eq!(json["driver_version"], *v, "{json}");
        validated(json, &k.release, v, Arch::X86_64);
        as_table_says(v, "6.12", Arch::X86_64, json);
        let p = t.path().join(format!("{v}.o"));
        std::fs::rename(json["path"].as_str().unwrap(), &p).unwrap();
        probes.push(p);
    }
    let image = debian_package(
        &k.target,
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let verify = |sources: &[&PathBuf]| {
        let mut a = vec![
            "verify".to_owned(),
            "--json".into(),
            "--kernel-image".into(),
            image.display().to_string(),
        ];
        for s in sources {
            a.extend(["--driver-source".into(), s.display().to_string()]);
        }
        a.extend(probes.iter().map(|p| p.display().to_string()));
        run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Refused before any boot: the probe whose source is missing, and no other.
    for (i, v) in versions.iter().enumerate() {
        let others: Vec<&PathBuf> = sources
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s)
            .collect();
        let (code, out, err) = verify(&others);
        assert_eq!(code, 2, "without the {v} source:\n{out}{err}");
        assert!(
            err.contains(&format!(
                "`{v}.o` (probe_version {v}) was built from none of the --driver-source given"
            )),
            "without the {v} source:\n{err}"
        );
        for other in versions.iter().filter(|o| *o != v) {
            assert!(!err.contains(&format!("`{other}.o`")), "{err}");
        }
    }
    let (code, out, err) = verify(&sources.iter().collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), versions.len(), "{v}");
    for ver in versions {
        let name = format!("{ver}.o");
        let r = reports
            .iter()
            .find(|r| r["probe"] == name.as_str())
            .unwrap_or_else(|| panic!("no report for {name}: {v}"));
        let j = probeforge::verify::judge(r);
        assert!(j.ok, "{}", j.line);
        let n = r["programs"].as_u64().unwrap();
        assert!(n >= 100, "{name}: {r}");
        assert_eq!(r["loaded"].as_u64(), Some(n), "{name}: {r}");
        assert!(r["maps"].as_u64().unwrap() >= 10, "{name}: {r}");
        assert_eq!(r["map_errors"].as_array().map_or(0, Vec::len), 0, "{r}");
        for tp in ["raw_tracepoint/sys_enter", "raw_tracepoint/sys_exit"] {
            let p = r["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == tp)
                .unwrap_or_else(|| panic!("{name}: no {tp}"));
            assert_eq!(p["attached"], true, "{name}: {p}");
        }
        // The workload, decoded with this driver's tables: the marker opened, the child exec'd.
        let ev = &r["events"];
        assert_eq!(ev["ok"], true, "{name}: {:#}", ev["expectations"]);
        assert_eq!(ev["errors"].as_array().map(Vec::len), Some(0), "{ev}");
        assert!(ev["decoded"].as_u64().unwrap() >= 10, "{name}: {ev}");
        let proof = ev["proof"].as_array().unwrap();
        assert_eq!(proof.len(), 3, "{name}: {proof:#?}");
        assert_eq!(proof[0]["name"], "openat", "{name}: {}", proof[0]);
        assert!(
            proof[0]["params"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p[0] == "name" && p[1] == "/tmp/probeforge-marker"),
            "{name}: {}",
            proof[0]
        );
        assert_eq!(proof[2]["name"], "execve", "{name}: {}", proof[2]);
    }
}

/// A flavour headers package given without its `-common` package: the error names the missing
/// package (from the flavour package's own Depends) and the package given by its file name,
/// never the private directory it was unpacked into.
#[test]
fn a_flavour_package_without_its_common_package_names_what_is_missing() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    // As a user has them: under their Debian file names.
    let named = |suffix: &str| {
        let (p, f) = k
            .packages
            .iter()
            .zip(&files)
            .find(|(p, _)| p.name.starts_with("linux-headers-") && p.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} package for {}", k.release));
        let dest = t.path().join(p.url.rsplit('/').next().unwrap());
        std::fs::copy(f, &dest).unwrap();
        (p.name.clone(), dest)
    };
    let (flavour, deb) = named(&format!("-{}", Arch::X86_64.debian()));
    let (common, _) = named("-common");
    let file = deb.file_name().unwrap().to_str().unwrap().to_owned();
    let (code, _, stderr) = build(
        &[deb],
        &shared_driver("6.0.1+driver"),
        None,
        &t.path().join("out"),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("`{file}` needs `{common}`"))
            && stderr.contains("Depends")
            && stderr.contains(&format!("/usr/src/{common}")),
        "{flavour} alone:\n{stderr}"
    );
    assert!(!stderr.contains("probeforge-"), "a private path:\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// A `.deb` with no kernel headers in it (Debian's scap dkms package) is named by its file name;
/// a cached copy whose file name is a digest is named by its package too.
#[test]
fn a_deb_without_kernel_headers_is_named_by_its_file_name() {
    let dkms = scap_dkms();
    let t = tmpdir();
    let deb = t.path().join("falcosecurity-scap-dkms_all.deb");
    std::fs::copy(&dkms, &deb).unwrap();
    let (code, _, stderr) = run(&["inspect", deb.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no kernel headers in `falcosecurity-scap-dkms_all.deb`")
            && stderr.contains("include/generated/utsrelease.h"),
        "{stderr}"
    );
    assert!(!stderr.contains("probeforge-"), "a private path:\n{stderr}");
    let (code, _, stderr) = run(&["inspect", dkms.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let digest_name = dkms.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(&format!("`{digest_name} (package falcosecurity-scap-dkms ")),
        "{stderr}"
    );
}

/// arm64, cross-built on this host: the oldest Falco-pinned driver here on Debian 6.1.
#[test]
fn driver_4_0_0_builds_for_arm64_6_1() {
    let (k, files) = debian_kernel("bookworm", Arch::Aarch64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let (code, json, stderr) = build(&headers, &shared_driver("4.0.0+driver"), None, t.path());
    assert_eq!(code, 0, "{stderr}");
    validated(&json, &k.release, "4.0.0+driver", Arch::Aarch64);
    as_table_says("4.0.0+driver", "6.1", Arch::Aarch64, &json);
}

/// `probeforge drivers --json`: every release Falco pinned, the default, and every
/// `patched:` cell names exactly the patches probeforge selects for that driver and kernel line.
#[test]
fn drivers_table_lists_every_release_and_its_patches_are_the_ones_selected() {
    let (code, stdout, stderr) = run(&["drivers", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let releases = v["releases"].as_array().unwrap();
    let find = |ver: &str| {
        releases
            .iter()
            .find(|r| r["version"] == ver)
            .unwrap_or_else(|| panic!("{ver} not listed"))
    };
    // Falco release -> driver, from each Falco tag's cmake/modules/driver.cmake.
    for (falco, driver) in [
        ("0.33.0", "3.0.1+driver"),
        ("0.34.0", "4.0.0+driver"),
        ("0.35.1", "5.0.1+driver"),
        ("0.36.0", "6.0.1+driver"),
        ("0.37.0", "7.0.0+driver"),
        ("0.38.0", "7.2.0+driver"),
        ("0.39.0", "7.3.0+driver"),
        ("0.40.0", "8.0.0+driver"),
        ("0.41.0", "8.1.0+driver"),
        ("0.42.0", "9.0.0+driver"),
        ("0.43.0", "9.1.0+driver"),
        ("0.32.0", "39ae7d40496793cf3d3e7890c9bbdc202263836b"),
    ] {
        let falcos = find(driver)["falco"].as_array().unwrap();
        assert!(
            falcos.iter().any(|f| f == falco),
            "{driver} lacks Falco {falco}"
        );
    }
    assert_eq!(find("9.1.0+driver")["default"], true);
    assert_eq!(releases.iter().filter(|r| r["default"] == true).count(), 1);
    // A kernel version of each line, as the matrix builds them.
    let kernel = |line: &str| match line {
        "5.10" => (5, 10, 0),
        "6.1" => (6, 1, 0),
        "6.12" => (6, 12, 0),
        _ => (7, 3, 0),
    };
    let patches = probeforge::patch::Catalog::embedded();
    let mut cells = 0;
    for r in releases {
        let ver = r["version"].as_str().unwrap();
        for (arch, lines) in r["outcomes"].as_object().unwrap() {
            for (line, o) in lines.as_object().unwrap() {
                cells += 1;
                let o = Outcome::parse(o.as_str().unwrap()).unwrap();
                let selected: Vec<String> = patches
                    .matching(ver, kernel(line))
                    .iter()
                    .map(|p| p.name.clone())
                    .collect();
                match o {
                    Outcome::Cannot(why) => assert!(!why.is_empty()),
                    o => assert_eq!(o, Outcome::built(&selected), "{ver} {arch} {line}"),
                }
            }
        }
    }
    assert!(cells >= 56, "only {cells} measured cells");
    let (code, text, _) = run(&["drivers"]);
    assert_eq!(code, 0);
    assert!(text.contains("9.1.0+driver (default)"), "{text}");
}
