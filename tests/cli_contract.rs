//! The command line's exit-code contract (README, "Exit codes"), command by command: 0 done,
//! 1 the work failed (a check found a problem, a probe is absent), 2 the request was wrong (an
//! unknown target, kernel, file, flag or architecture; a filter matching nothing; an output
//! that cannot be written, found before any work; `--offline` without what it needs), each
//! with one `error:` line naming the thing at fault.
//!
//! Every row runs the real binary. The first table needs no network at all (an empty cache,
//! `--offline` where the command would reach a repository); the second reads real Debian
//! listings, fetched once into the test cache and then read `--offline`.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::path::Path;

/// One row: the arguments, the exit code, and what the one `error:` line must name (empty:
/// there must be no `error:` line).
struct Row {
    args: Vec<String>,
    code: i32,
    names: &'static str,
}

fn row(args: &[&str], code: i32, names: &'static str) -> Row {
    Row {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        names,
    }
}

/// Runs every row; collects every broken promise before failing, so one run shows them all.
fn check(rows: &[Row], cache: &Path) {
    let mut broken = Vec::new();
    for r in rows {
        let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
        let (code, _out, err) = common::cli(&args, cache);
        let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        let named = match r.names {
            "" => error_lines.is_empty(),
            n => error_lines.len() == 1 && error_lines[0].contains(n),
        };
        if code != r.code || !named {
            broken.push(format!(
                "probeforge {}\n  exit {code} (want {}), error lines {error_lines:?} (want one naming {:?})\n  stderr: {}",
                r.args.join(" "),
                r.code,
                r.names,
                err.trim_end()
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n\n"));
}

#[test]
fn every_command_exits_by_the_contract_without_network() {
    let t = common::tmpdir();
    let d = t.path();
    let p = |name: &str| d.join(name).display().to_string();
    // An empty cache: nothing in it, and every row that would reach a repository is --offline.
    let cache = d.join("empty-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let empty = p("empty.tar.gz");
    std::fs::write(&empty, b"").unwrap();
    let some_file = p("some-file");
    std::fs::write(&some_file, b"not a package").unwrap();
    // Below a regular file nothing can be created: an output that cannot be written (the
    // tests may run as root, for whom permissions do not stop a write).
    let unwritable = format!("{some_file}/out");
    let missing = p("no-such-file");
    let repo = p("repo");
    std::fs::create_dir_all(d.join("repo")).unwrap();
    let shard = p("shard");
    std::fs::create_dir_all(d.join("shard")).unwrap();
    // A published probe (the bytes do not matter to `exists`), and a repository whose
    // SHA256SUMS names a file that is not there (`check` finds a problem).
    let published = d.join("repo/8.0.0+driver/x86_64/falco_debian_6.1.176-1-amd64_1.o");
    std::fs::create_dir_all(published.parent().unwrap()).unwrap();
    std::fs::write(&published, b"probe").unwrap();
    let damaged = d.join("damaged/8.0.0+driver/x86_64");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(
        damaged.join("SHA256SUMS"),
        format!("{}  falco_debian_6.1.176-1-amd64_1.o\n", "0".repeat(64)),
    )
    .unwrap();
    let out = p("out");
    // A driverkit config naming a target no one has (a typo of `debian`).
    let misspelt = p("debain.yaml");
    std::fs::write(
        &misspelt,
        "kernelrelease: 6.1.0-50-amd64\nkernelversion: \"1\"\ntarget: debain\nkernelurls:\n  - http://127.0.0.1:1/linux-headers-6.1.0-50-amd64_6.1.176-1_amd64.deb\n",
    )
    .unwrap();
    let exists = |repo: &str, release: &str, arch: &str| -> Vec<String> {
        [
            "--offline",
            "exists",
            "--repo",
            repo,
            "--driver-version",
            "8.0.0+driver",
            "--target-id",
            "debian",
            "--kernel-release",
            release,
            "--kernel-version",
            "1",
            "--arch",
            arch,
        ]
        .map(String::from)
        .to_vec()
    };
    let exists = |repo: &str, release: &str, arch: &str, code: i32, names: &'static str| Row {
        args: exists(repo, release, arch),
        code,
        names,
    };
    #[rustfmt::skip]
    let rows = vec![
        // An unknown flag, for every command.
        row(&["inspect", &some_file, "--bogus"], 2, "--bogus"),
        row(&["build", "--bogus"], 2, "--bogus"),
        row(&["validate", &some_file, "--bogus"], 2, "--bogus"),
        row(&["list-kernels", "--bogus"], 2, "--bogus"),
        row(&["build-all", "--bogus"], 2, "--bogus"),
        row(&["merge", &out, &shard, "--bogus"], 2, "--bogus"),
        row(&["site", "--repo", &repo, "--bogus"], 2, "--bogus"),
        row(&["exists", "--bogus"], 2, "--bogus"),
        row(&["verify", &some_file, "--bogus"], 2, "--bogus"),
        row(&["toolchain", "list", "--bogus"], 2, "--bogus"),
        row(&["check", "--repo", &repo, "--bogus"], 2, "--bogus"),
        row(&["fetch", "debian", "latest", "--bogus"], 2, "--bogus"),
        row(&["drivers", "--bogus"], 2, "--bogus"),
        row(&["bazel", "debian", "-o", &out, "--bogus"], 2, "--bogus"),
        row(&["no-such-command"], 2, "no-such-command"),
        // An unknown target.
        row(&["--offline", "build", "--target", "debain", "-o", &out], 2, "`debain`"),
        row(&["--offline", "fetch", "debain", "latest"], 2, "`debain`"),
        row(&["--offline", "list-kernels", "debain"], 2, "`debain`"),
        row(&["--offline", "build-all", "debain", "--repo", &repo], 2, "`debain`"),
        row(&["--offline", "bazel", "debain", "-o", &out], 2, "`debain`"),
        row(&["--offline", "site", "--repo", &repo, "debain"], 2, "`debain`"),
        row(&["--offline", "build", "-c", &misspelt, "-o", &out], 2, "`debain` (closest: debian"),
        // An unknown architecture.
        row(&["--offline", "list-kernels", "debian", "--arch", "sparc"], 2, "`sparc`"),
        row(&["--offline", "fetch", "debian", "latest", "--arch", "sparc"], 2, "`sparc`"),
        row(&["--offline", "build-all", "debian", "--repo", &repo, "--arch", "sparc"], 2, "`sparc`"),
        row(&["validate", &some_file, "--arch", "sparc"], 2, "`sparc`"),
        // A file that is not there.
        row(&["inspect", &missing], 2, "no-such-file"),
        row(&["validate", &missing], 2, "no-such-file"),
        row(&["verify", &missing], 2, "no-such-file"),
        row(&["build", "--headers", &missing, "--driver-source", &some_file, "-o", &out], 2, "no-such-file"),
        row(&["build", "--headers", &some_file, "--driver-source", &missing, "-o", &out], 2, "no-such-file"),
        row(&["build-all", "--from", &missing, "--repo", &repo], 2, "no-such-file"),
        row(&["bazel", "--from", &missing, "-o", &out], 2, "no-such-file"),
        row(&["site", "--repo", &repo, "--from", &missing], 2, "no-such-file"),
        row(&["merge", &out, &missing], 2, "no-such-file"),
        row(&["check", "--repo", &missing], 2, "no-such-file"),
        row(&["toolchain", "show", "no-such-toolchain"], 2, "no-such-toolchain"),
        // An empty file is named as empty, not as an unknown package format.
        row(&["build", "--headers", &some_file, "--driver-source", &empty, "-o", &out], 2, "empty.tar.gz` is empty"),
        row(&["inspect", &empty], 2, "empty.tar.gz` is empty"),
        // An output that cannot be written, found before any work.
        row(&["build", "--headers", &some_file, "--driver-source", &some_file, "-o", &unwritable], 2, "some-file/out"),
        row(&["build", "--headers", &some_file, "--driver-source", &some_file, "-o", &some_file], 2, "is not a directory"),
        row(&["--offline", "fetch", "debian", "latest", "-o", &unwritable], 2, "some-file/out"),
        row(&["--offline", "build-all", "debian", "--repo", &unwritable], 2, "some-file/out"),
        row(&["--offline", "bazel", "debian", "-o", &unwritable], 2, "some-file/out"),
        row(&["merge", &unwritable, &shard], 2, "some-file/out"),
        // --offline with nothing in the cache: the request cannot be met here.
        row(&["--offline", "list-kernels", "debian-bookworm", "--arch", "x86_64"], 2, "offline"),
        row(&["--offline", "fetch", "debian-bookworm", "latest"], 2, "offline"),
        row(&["--offline", "build", "--target", "debian-bookworm", "-o", &out], 2, "offline"),
        row(&["--offline", "build-all", "debian-bookworm", "--repo", &repo, "--arch", "x86_64"], 2, "offline"),
        // A filter that is no regular expression.
        row(&["--offline", "build-all", "debian", "--repo", &repo, "--only", "("], 2, "--only"),
        // A watch: what it cannot take, a duration that is none, an unknown target.
        row(&["build-all", "debian", "--repo", &repo, "--watch", "10m", "--only", "^6"], 2, "--only"),
        row(&["build-all", "debian", "--repo", "http://127.0.0.1:9/r", "--watch", "10m"], 2, "local --repo"),
        row(&["build-all", "debian", "--repo", &repo, "--watch", "ten"], 2, "`ten`"),
        row(&["watch", "debian", "--repo", &repo, "--interval", "5x"], 2, "`5x`"),
        row(&["--offline", "watch", "debain", "--repo", &repo, "--once"], 2, "`debain`"),
        row(&["--offline", "bazel", "debian", "-o", &out, "--only", "("], 2, "--only"),
        // A repository that is not there, and a published probe present or absent.
        exists(&repo, "6.1.176-1-amd64", "x86_64", 0, ""),
        exists(&repo, "6.1.999-1-amd64", "x86_64", 1, ""),
        exists(&repo, "6.1.176-1-amd64", "sparc", 2, "`sparc`"),
        exists(&missing, "6.1.176-1-amd64", "x86_64", 2, "no-such-file"),
        // The work failed: a check that finds a problem, an object that is no probe.
        row(&["check", "--repo", &p("damaged")], 1, ""),
        row(&["validate", &some_file], 1, ""),
        // Done.
        row(&["drivers"], 0, ""),
        row(&["toolchain", "list"], 0, ""),
        row(&["--offline", "list-kernels", "--targets-only"], 0, ""),
    ];
    check(&rows, &cache);
}

#[test]
fn kernel_names_and_filters_exit_by_the_contract_on_real_listings() {
    let t = common::tmpdir();
    let d = t.path();
    let p = |name: &str| d.join(name).display().to_string();
    let cache = common::cache_dir();
    // The listings, fetched once (online); every row then reads them --offline.
    for target in ["debian-bookworm", "debian-trixie"] {
        let (code, _, err) = common::cli(&["list-kernels", target, "--arch", "x86_64"], &cache);
        assert_eq!(code, 0, "listing {target}: {err}");
    }
    let dkms = common::scap_dkms().display().to_string();
    let (repo, out) = (p("repo"), p("out"));
    #[rustfmt::skip]
    let rows = vec![
        // A kernel the target does not have.
        row(&["--offline", "fetch", "debian-bookworm", "9.9.9-1-amd64"], 2, "`9.9.9-1-amd64`"),
        row(&["--offline", "build", "--target", "debian-bookworm", "--kernel", "9.9.9-1-amd64", "--driver-source", &dkms, "-o", &out], 2, "`9.9.9-1-amd64`"),
        // A filter matching no kernel of any target.
        row(&["--offline", "build-all", "debian-bookworm", "--arch", "x86_64", "--only", r"^9\.9\.", "--repo", &repo, "--driver-source", &dkms], 2, "debian-bookworm"),
        row(&["--offline", "build-all", "debian-bookworm", "debian-trixie", "--arch", "x86_64", "--only", r"^9\.9\.", "--repo", &repo, "--driver-source", &dkms, "--plan"], 2, "debian-trixie"),
        row(&["--offline", "bazel", "debian-bookworm", "--arch", "x86_64", "--only", r"^9\.9\.", "-o", &out], 2, "--only"),
        // A filter matching the kernels of one target of two: the other is said, not an error.
        row(&["--offline", "build-all", "debian-bookworm", "debian-trixie", "--arch", "x86_64", "--only", r"^6\.1\.0-", "--repo", &repo, "--driver-source", &dkms, "--plan"], 0, ""),
        row(&["--offline", "list-kernels", "debian-bookworm", "--arch", "x86_64"], 0, ""),
    ];
    check(&rows, &cache);
    // ... and the target without a match is named.
    let (code, _, err) = common::cli(
        &[
            "--offline",
            "build-all",
            "debian-bookworm",
            "debian-trixie",
            "--arch",
            "x86_64",
            "--only",
            r"^6\.1\.0-",
            "--repo",
            &repo,
            "--driver-source",
            &dkms,
            "--plan",
        ],
        &cache,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("matches none of the") && l.contains("`debian-trixie`")),
        "{err}"
    );
}

/// `build --driver ebpf,kmod` makes both for one kernel; `build -o` never replaces a different
/// file under the probe's name (exit 1, both digests named) unless `--force`, and leaves the
/// same bytes be; `-q` leaves stderr empty.
#[test]
fn build_makes_both_drivers_and_never_replaces_other_bytes() {
    let (k, _) = common::debian_kernel("bookworm", probeforge::kernel::Arch::X86_64);
    let src = drivers::scap_dkms_0_23_2();
    let out = common::tmpdir();
    let build = |extra: &[&str]| {
        let mut a = vec![
            "build",
            "--target",
            "debian-bookworm",
            "--kernel",
            &k.release,
            "--driver-source",
            src.to_str().unwrap(),
            "-o",
            out.path().to_str().unwrap(),
        ];
        a.extend(extra);
        common::cli(&a, &common::cache_dir())
    };
    let (probe, module) = (
        out.path().join(common::falco_file(&k, "o")),
        out.path().join(common::falco_file(&k, "ko")),
    );

    // Both drivers of one kernel, one report each.
    let (code, stdout, err) = build(&["--driver", "ebpf,kmod", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON array");
    let names: Vec<&str> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [common::falco_file(&k, "o"), common::falco_file(&k, "ko")]
    );
    assert!(probe.is_file() && module.is_file(), "{stdout}");
    let built = std::fs::read(&probe).unwrap();

    // Other bytes under the probe's name: refused, named, left as they are.
    std::fs::write(&probe, b"another driver's probe").unwrap();
    let other = common::sha256_file(&probe);
    let (code, _, err) = build(&[]);
    assert_eq!(code, 1, "{err}");
    let line: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert!(
        line.len() == 1
            && line[0].contains(&probe.display().to_string())
            && line[0].contains(&other)
            && line[0].contains(&probeforge::base::sha256(&built))
            && line[0].contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&probe).unwrap(), b"another driver's probe");

    // --force replaces them; the same bytes again are fine, and -q says nothing on stderr.
    let (code, _, err) = build(&["--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("built for"), "{err}");
    assert_eq!(std::fs::read(&probe).unwrap(), built);
    let (code, stdout, err) = build(&["-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "-q");
    assert!(stdout.contains(&common::falco_file(&k, "o")), "{stdout}");
}

/// Every name of a kernel (`uname -r`, Falco's file release as kernel-crawler and driverkit
/// write it, its header package and that package's file name) resolves, in every command that
/// takes a kernel, to the same kernel, and the command says which.
#[test]
fn every_name_of_a_kernel_resolves_to_it() {
    let (k, files) = common::debian_kernel("bookworm", probeforge::kernel::Arch::X86_64);
    let file_release = k.file_release();
    assert_ne!(file_release, k.release, "a Debian kernel has two names");
    let headers = format!("linux-headers-{}", k.release);
    let deb = files
        .iter()
        .zip(&k.packages)
        .find(|(_, p)| p.name == headers)
        .map(|(_, p)| p.url.rsplit('/').next().unwrap().to_owned())
        .unwrap();
    let cache = common::cache_dir();
    for name in [&k.release, &file_release, &headers, &deb] {
        let (code, out, err) = common::cli(&["fetch", "debian-bookworm", name, "--json"], &cache);
        assert_eq!(code, 0, "fetch {name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["kernel"]["release"], k.release.as_str(), "fetch {name}");
        let form = match name {
            n if *n == k.release => None,
            n if *n == file_release => Some("file_release"),
            _ => Some("header_package"),
        };
        assert_eq!(v["named_as"]["form"].as_str(), form, "fetch {name}: {out}");
    }
    // build --kernel with Falco's name writes the probe under that name.
    let src = drivers::scap_dkms_0_23_2();
    let out = common::tmpdir();
    let (code, _, err) = common::cli(
        &[
            "build",
            "--target",
            "debian-bookworm",
            "--kernel",
            &file_release,
            "--driver-source",
            src.to_str().unwrap(),
            "-o",
            out.path().to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("is kernel {}", k.release)), "{err}");
    let probe = common::falco_file(&k, "o");
    assert!(out.path().join(&probe).is_file(), "{probe}");

    // exists: Falco's name directly, uname -r through the listing (said).
    let repo = common::tmpdir();
    let dir = repo.path().join("9.1.0+driver/x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(out.path().join(&probe), dir.join(&probe)).unwrap();
    for name in [&file_release, &k.release] {
        let (code, _, err) = common::cli(
            &[
                "exists",
                "--repo",
                repo.path().to_str().unwrap(),
                "--driver-version",
                "9.1.0+driver",
                "--target-id",
                "debian",
                "--kernel-release",
                name,
                "--kernel-version",
                "1",
            ],
            &cache,
        );
        assert_eq!(code, 0, "exists {name}: {err}");
        if *name == k.release {
            assert!(
                err.contains(&format!("is Falco's `{file_release}`")),
                "{err}"
            );
        }
    }

    // --only matches Falco's name as well as uname -r.
    for only in [&k.release, &file_release] {
        let re = format!("^{}$", regex::escape(only));
        let (code, out, err) = common::cli(
            &[
                "build-all",
                "debian-bookworm",
                "--arch",
                "x86_64",
                "--only",
                &re,
                "--repo",
                repo.path().to_str().unwrap(),
                "--driver-source",
                src.to_str().unwrap(),
                "--plan",
                "--json",
            ],
            &cache,
        );
        assert_eq!(code, 0, "--only {re}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let releases: std::collections::BTreeSet<&str> = v["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["release"].as_str().unwrap())
            .collect();
        assert_eq!(
            releases.into_iter().collect::<Vec<_>>(),
            [k.release.as_str()],
            "--only {re}"
        );
    }
}

/// On a terminal (a pty from script(1)), a batch's progress bar appears only once it knows
/// its total: nothing to build shows no `0/0` bar, and the count is worded as people write it.
#[test]
fn a_batch_on_a_terminal_never_shows_an_empty_progress_bar() {
    let (k, _) = common::debian_kernel("bookworm", probeforge::kernel::Arch::X86_64);
    let src = drivers::scap_dkms_0_23_2();
    let repo = common::tmpdir();
    // Published already (the farm looks the name up; the bytes do not matter here).
    let dir = repo.path().join("9.1.0+driver/x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(common::falco_file(&k, "o")), b"published").unwrap();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let only = format!("^{}$", regex::escape(&k.release));
    let line = [
        common::bin().display().to_string(),
        "--offline".into(),
        "--cache-dir".into(),
        common::cache_dir().display().to_string(),
        "build-all".into(),
        "debian-bookworm".into(),
        "--arch".into(),
        "x86_64".into(),
        "--only".into(),
        only,
        "--repo".into(),
        repo.path().display().to_string(),
        "--driver-source".into(),
        src.display().to_string(),
    ]
    .iter()
    .map(|a| quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("0 kernels to build, 1 already published"),
        "{text}"
    );
    assert!(!text.contains("0/0"), "an empty progress bar: {text}");
}
