//! Hermetic builds: a real Bazel genrule (Debian's bazel-bootstrap) twice from clean, the
//! sandbox contract by hand (no network namespace, empty environment, read-only inputs, umask),
//! determinism across directories, input order and parallelism, and the pinned toolchain.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::kernel::Arch;

fn inputs() -> (String, Vec<PathBuf>, PathBuf) {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    (k.release.clone(), header_files(&k, &files), libs_0_20_0())
}

fn sha_of_only_file(dir: &Path) -> String {
    let files: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    sha256_file(&files[0].path())
}

#[test]
fn bazel_genrule_twice_gives_identical_digests() {
    let (release, headers, driver) = inputs();
    let t = tmpdir();
    let ws = t.path().join("ws");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bazel");
    fs::create_dir_all(ws.join("headers")).unwrap();
    fs::create_dir_all(ws.join("driver")).unwrap();
    fs::create_dir_all(ws.join("tools")).unwrap();
    fs::copy(example.join("WORKSPACE"), ws.join("WORKSPACE")).unwrap();
    let build = fs::read_to_string(example.join("BUILD.bazel"))
        .unwrap()
        .replace(
            "KERNEL_RELEASE = \"6.1.0-50-amd64\"",
            &format!("KERNEL_RELEASE = \"{release}\""),
        );
    fs::write(ws.join("BUILD.bazel"), build).unwrap();
    // Cached packages are named by digest; in the workspace they get their .deb names.
    for (i, h) in headers.iter().enumerate() {
        fs::copy(h, ws.join("headers").join(format!("headers-{i}.deb"))).unwrap();
    }
    fs::copy(
        &driver,
        ws.join("driver/falcosecurity-libs_0.20.0.orig.tar.gz"),
    )
    .unwrap();
    fs::copy(bin(), ws.join("tools/probeforge")).unwrap();
    let user_root = t.path().join("bazel-root");
    let bazel = |args: &[&str]| {
        let o = Command::new("bazel")
            .arg("--batch")
            .arg(format!("--output_user_root={}", user_root.display()))
            .args(args)
            .current_dir(&ws)
            .env("HOME", t.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bazel {args:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let probe = ws.join(format!("bazel-bin/falco_debian_{release}_1.o"));
    bazel(&["build", "//:probe"]);
    let first = sha256_file(&probe);
    let prov1 = fs::read(ws.join("bazel-bin/provenance.json")).unwrap();
    bazel(&["clean", "--expunge"]);
    bazel(&["build", "//:probe"]);
    assert_eq!(sha256_file(&probe), first);
    assert_eq!(
        fs::read(ws.join("bazel-bin/provenance.json")).unwrap(),
        prov1
    );
    let v: serde_json::Value = serde_json::from_slice(&prov1).unwrap();
    assert_eq!(v["subject"][0]["digest"]["sha256"], first.as_str());
    // The same as a plain build of the same inputs outside Bazel.
    let out = t.path().join("plain");
    let a = build_args(&headers, &driver, &out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha_of_only_file(&out), first);
}

#[test]
fn sandbox_contract_no_network_empty_env_read_only_inputs() {
    let (_, headers, driver) = inputs();
    let t = tmpdir();
    // Read-only inputs in a read-only directory.
    let ro = t.path().join("ro");
    fs::create_dir_all(&ro).unwrap();
    let mut ro_headers = Vec::new();
    for h in headers.iter().rev() {
        let d = ro.join(h.file_name().unwrap());
        fs::copy(h, &d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o444)).unwrap();
        ro_headers.push(d);
    }
    let ro_driver = ro.join("libs.tar.gz");
    fs::copy(&driver, &ro_driver).unwrap();
    fs::set_permissions(&ro_driver, fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let (tmp, home, out) = (
        t.path().join("tmp"),
        t.path().join("home"),
        t.path().join("out"),
    );
    fs::create_dir_all(&tmp).unwrap();
    fs::create_dir_all(&home).unwrap();
    let sandboxed = |args: &[String], umask: &str| {
        let script = format!("umask {umask}; exec \"$@\"");
        Command::new("unshare")
            .arg("-n")
            .arg("--")
            .arg("/usr/bin/env")
            .arg("-i")
            .arg("PATH=/usr/bin:/bin")
            .arg(format!("TMPDIR={}", tmp.display()))
            .arg(format!("HOME={}", home.display()))
            .arg("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(bin())
            .args(args)
            .output()
            .unwrap()
    };
    let a = build_args(&ro_headers, &ro_driver, &out);
    let o = sandboxed(&a, "077");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sandbox_sha = sha_of_only_file(&out);
    // Nothing written anywhere else: HOME untouched, TMPDIR cleaned up.
    assert_eq!(fs::read_dir(&home).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    // The same bytes as an ordinary build with the inputs in the other order, umask 022, one
    // thread, and the driver as a read-only unpacked source tree instead of the tarball.
    let tree = t.path().join("tree");
    probeforge::extract::unpack_all(
        std::slice::from_ref(&driver),
        &tree,
        probeforge::extract::Selection::Driver,
        Default::default(),
    )
    .unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "a-w"])
        .arg(&tree)
        .status()
        .unwrap()
        .success());
    let out2 = t.path().join("out2");
    let a = build_args(&headers, &tree, &out2);
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(bin())
        .args(&a)
        .env("RAYON_NUM_THREADS", "1")
        .env("LC_ALL", "de_DE.UTF-8")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha_of_only_file(&out2), sandbox_sha);
    // A missing input is named; so is what an offline target build would have needed.
    let missing = ro.join("linux-headers-missing.deb");
    let mut a = build_args(&ro_headers, &ro_driver, &t.path().join("out3"));
    a.push(missing.display().to_string());
    let o = sandboxed(&a, "022");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let o = sandboxed(
        &[
            "--offline".into(),
            "--cache-dir".into(),
            t.path().join("empty-cache").display().to_string(),
            "build".into(),
            "--target".into(),
            "debian-bookworm".into(),
            "--driver-source".into(),
            ro_driver.display().to_string(),
            "--driver-version".into(),
            "8.0.0+driver".into(),
        ],
        "022",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("offline") && err.contains("not in the cache") && err.contains("Release"),
        "{err}"
    );
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&tree)
        .status()
        .unwrap()
        .success());
}

#[test]
fn build_all_bytes_do_not_depend_on_jobs() {
    let all = lister().list("debian-bookworm", &[Arch::X86_64]).unwrap();
    let two: Vec<_> = all
        .iter()
        .filter(|k| k.release.starts_with("6.1.") && !k.release.contains("-rt-"))
        .rev()
        .take(2)
        .collect();
    let only = format!(
        "^({})$",
        two.iter()
            .map(|k| regex::escape(&k.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let t = tmpdir();
    let driver = libs_0_20_0();
    let mut sums = Vec::new();
    for jobs in ["1", "2"] {
        // Separate compile caches: each run really compiles.
        let cache = t.path().join(format!("cache-{jobs}"));
        assert!(Command::new("cp")
            .arg("-a")
            .arg(cache_dir())
            .arg(&cache)
            .status()
            .unwrap()
            .success());
        let _ = fs::remove_dir_all(cache.join("probes"));
        let repo = t.path().join(format!("repo-{jobs}"));
        let o = Command::new(bin())
            .args([
                "build-all",
                "debian-bookworm",
                "--arch",
                "x86_64",
                "--only",
                &only,
                "--repo",
                repo.to_str().unwrap(),
                "--driver-source",
                driver.to_str().unwrap(),
                "--driver-version",
                "8.0.0+driver",
                "-j",
                jobs,
            ])
            .env("PROBEFORGE_CACHE", &cache)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        sums.push(fs::read_to_string(repo.join("8.0.0+driver/x86_64/SHA256SUMS")).unwrap());
        let _ = fs::remove_dir_all(&cache);
    }
    assert_eq!(sums[0].lines().count(), 2);
    assert_eq!(sums[0], sums[1]);
}

#[test]
fn pinned_toolchain_gives_the_host_clang_14_bytes_and_refuses_substitutes() {
    let (_, headers, driver) = inputs();
    let t = tmpdir();
    let host_out = t.path().join("host");
    let a = build_args(&headers, &driver, &host_out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let pinned_out = t.path().join("pinned");
    let mut a = build_args(&headers, &driver, &pinned_out);
    a.extend([
        "--toolchain".into(),
        "llvm-14-debian12".into(),
        "--provenance".into(),
        t.path().join("prov.json").display().to_string(),
    ]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha_of_only_file(&pinned_out), sha_of_only_file(&host_out));
    let prov: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("prov.json")).unwrap()).unwrap();
    assert_eq!(prov["predicate"]["toolchain"]["pinned"], "llvm-14-debian12");
    assert!(
        !prov.to_string().contains("test-cache"),
        "no machine paths in provenance"
    );
    // Pinning does not silently take another clang.
    let mut a = build_args(&headers, &driver, &t.path().join("x"));
    a.extend([
        "--toolchain".into(),
        "llvm-14-debian12".into(),
        "--clang".into(),
        "/usr/bin/clang".into(),
    ]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pins clang and llc"), "{err}");
    let mut a = build_args(&headers, &driver, &t.path().join("y"));
    a.extend(["--require-llvm".into(), "14.0.7".into()]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pinned to LLVM 14.0.7"), "{err}");
    let (code, out, _) = run(&["toolchain", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("llvm-14-debian12") && out.contains("in cache"),
        "{out}"
    );
}
