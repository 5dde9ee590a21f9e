//! `probeforge bazel`: the package it writes, built by Debian's bazel-bootstrap for two real
//! Debian kernels with no network (every download served from a `--distdir`), then again from
//! an expunged output base with every action served by a loopback remote cache speaking
//! Bazel's HTTP cache protocol; the probes are the bytes of a plain `probeforge build`.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use probeforge::kernel::Arch;

/// What the remote cache saw.
#[derive(Default, Debug, Clone)]
struct Counts {
    ac_hits: usize,
    ac_misses: usize,
    cas_hits: usize,
    cas_misses: usize,
    puts: usize,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Vec<u8>>,
    counts: Counts,
}

/// Bazel's HTTP remote cache on 127.0.0.1 (port 0), in memory: `GET` and `PUT` of
/// `/ac/<sha256>` (action results) and `/cas/<sha256>` (contents); a miss answers 404.
struct RemoteCache {
    url: String,
    store: Arc<Mutex<Store>>,
}

impl RemoteCache {
    fn start() -> RemoteCache {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let store = Arc::new(Mutex::new(Store::default()));
        let s = store.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(c, &s);
                });
            }
        });
        RemoteCache { url, store }
    }

    fn counts(&self) -> Counts {
        self.store.lock().unwrap().counts.clone()
    }

    fn reset_counts(&self) {
        self.store.lock().unwrap().counts = Counts::default();
    }
}

/// One keep-alive connection: requests until the client closes it.
fn serve(c: TcpStream, store: &Mutex<Store>) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let (mut len, mut chunked, mut close, mut expect) = (0usize, false, false, false);
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            let (k, v) = (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => len = v.parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                "expect" => expect = v == "100-continue",
                _ => {}
            }
        }
        if expect {
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        }
        let is_ac = path.starts_with("/ac/");
        let valid = is_ac || path.starts_with("/cas/");
        let (status, reply): (&str, Vec<u8>) = {
            let mut s = store.lock().unwrap();
            match (method.as_str(), valid) {
                ("GET", true) => match s.blobs.get(&path).cloned() {
                    Some(b) => {
                        match is_ac {
                            true => s.counts.ac_hits += 1,
                            false => s.counts.cas_hits += 1,
                        }
                        ("200 OK", b)
                    }
                    None => {
                        match is_ac {
                            true => s.counts.ac_misses += 1,
                            false => s.counts.cas_misses += 1,
                        }
                        ("404 Not Found", Vec::new())
                    }
                },
                ("PUT", true) => {
                    s.counts.puts += 1;
                    s.blobs.insert(path.clone(), body);
                    ("200 OK", Vec::new())
                }
                _ => ("405 Method Not Allowed", Vec::new()),
            }
        };
        write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            reply.len()
        )?;
        w.write_all(&reply)?;
        w.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn probeforge_bazel(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["bazel"];
    a.extend(args);
    a.push("--json");
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "probeforge {a:?}:\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Every file the WORKSPACE downloads, in a directory named by URL, as `--distdir` wants.
fn distdir(written: &serde_json::Value, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for d in written["downloads"].as_array().unwrap() {
        let url = d["url"].as_str().unwrap();
        let (cached, _) = net()
            .client
            .fetch_verified(url, d["sha256"].as_str().unwrap(), None)
            .unwrap_or_else(|e| panic!("{url}: {e:#?}"));
        let to = dir.join(url.rsplit('/').next().unwrap());
        if fs::hard_link(&cached, &to).is_err() {
            fs::copy(&cached, &to).unwrap();
        }
    }
}

/// The `INFO: N processes: ...` line of a Bazel build's output.
fn processes_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains(" processes: ") || l.contains(" process: "))
        .unwrap_or_else(|| panic!("no process summary in:\n{stderr}"))
        .to_owned()
}

#[test]
fn two_kernels_offline_then_every_action_from_the_remote_cache() {
    let (k1, files1) = debian_kernel("bookworm", Arch::X86_64);
    let (k2, _) = debian_kernel("trixie", Arch::X86_64);
    let only = format!(
        "^({}|{})$",
        regex::escape(&k1.release),
        regex::escape(&k2.release)
    );
    let t = tmpdir();
    let ws = t.path().join("ws");
    let w = probeforge_bazel(&[
        "debian-bookworm",
        "debian-trixie",
        "--arch",
        "x86_64",
        "--only",
        &only,
        "-o",
        ws.to_str().unwrap(),
    ]);
    let kernels = w["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 2, "{w:#}");
    assert_eq!(w["pinned_by_download"], 0, "a signed listing gives digests");
    // Nothing of this machine in the package but the mirrors' URLs.
    for f in ["WORKSPACE", "BUILD.bazel", "probeforge.bzl"] {
        let text = fs::read_to_string(ws.join(f)).unwrap();
        assert!(
            !text.contains(env!("CARGO_MANIFEST_DIR")) && !text.contains("test-cache"),
            "{f}:\n{text}"
        );
    }
    let dist = t.path().join("distdir");
    distdir(&w, &dist);

    let cache = RemoteCache::start();
    let user_root = t.path().join("bazel-root");
    let bazel = |args: &[&str]| {
        let start = Instant::now();
        let o = Command::new("bazel")
            .arg("--batch")
            .arg(format!("--output_user_root={}", user_root.display()))
            .args(args)
            .current_dir(&ws)
            .env("HOME", t.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "bazel {args:?}:\n{err}");
        (err, start.elapsed().as_secs_f64())
    };
    let dist_flag = format!("--distdir={}", dist.display());
    let remote = format!("--remote_cache={}", cache.url);
    let build = [
        "build",
        "//:all",
        &dist_flag,
        // No repository cache to fall back on, and any download attempt fails: every
        // external file comes from the distdir.
        "--repository_cache=",
        "--experimental_repository_disable_download",
        &remote,
    ];
    let (err1, secs1) = bazel(&build);
    let first = cache.counts();
    let outputs: Vec<_> = kernels
        .iter()
        .map(|k| ws.join("bazel-bin").join(k["file"].as_str().unwrap()))
        .collect();
    let sums1: Vec<String> = outputs.iter().map(|p| sha256_file(p)).collect();
    eprintln!(
        "first build (offline, cache empty): {secs1:.1}s; {}; cache {first:?}",
        processes_line(&err1)
    );
    assert!(first.puts >= 2 && first.ac_hits == 0, "{first:?}\n{err1}");

    bazel(&["clean", "--expunge"]);
    cache.reset_counts();
    let (err2, secs2) = bazel(&build);
    let second = cache.counts();
    let line = processes_line(&err2);
    eprintln!("second build (clean output base): {secs2:.1}s; {line}; cache {second:?}");
    // Every action came from the remote cache: none ran here.
    assert!(line.contains("2 remote cache hit"), "{line}\n{err2}");
    for local in ["linux-sandbox", "local", "processwrapper-sandbox", "worker"] {
        assert!(!line.contains(local), "an action ran here: {line}");
    }
    assert_eq!(second.ac_hits, 2, "{second:?}");
    assert_eq!(second.puts, 0, "{second:?}");
    let sums2: Vec<String> = outputs.iter().map(|p| sha256_file(p)).collect();
    assert_eq!(sums1, sums2);

    // The bytes of a plain build of the same inputs, outside Bazel.
    let plain = t.path().join("plain");
    let mut a: Vec<String> = [
        "build",
        "--driver-version",
        "9.1.0+driver",
        "--toolchain",
        "llvm-14-debian12",
        "-o",
    ]
    .map(String::from)
    .to_vec();
    a.push(plain.display().to_string());
    a.push("--headers".into());
    a.extend(
        header_files(&k1, &files1)
            .iter()
            .map(|f| f.display().to_string()),
    );
    let (code, _, err) = run(&a);
    assert_eq!(code, 0, "{err}");
    let i = kernels
        .iter()
        .position(|k| k["release"] == k1.release.as_str())
        .unwrap();
    let file = kernels[i]["file"].as_str().unwrap();
    assert_eq!(sha256_file(&plain.join(file)), sums1[i], "{file}");
}

#[test]
fn the_package_is_the_same_bytes_twice_and_a_crawler_lists_digests_are_pinned() {
    let (k1, _) = debian_kernel("bookworm", Arch::X86_64);
    let (k2, _) = debian_kernel("trixie", Arch::X86_64);
    let t = tmpdir();
    let list = t.path().join("list.json");
    let crawler = probeforge::repo::crawler::write(&[k1.clone(), k2.clone()]);
    fs::write(&list, serde_json::to_vec_pretty(&crawler).unwrap()).unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for dir in [&a, &b] {
        let args = [
            "bazel",
            "--from",
            list.to_str().unwrap(),
            "-o",
            dir.to_str().unwrap(),
        ];
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("carry no digest"),
            "the pinning is not said:\n{err}"
        );
        assert!(out.contains("2 kernels"), "{out}");
    }
    let files = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(d)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(d).unwrap().display().to_string();
                (rel, fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let (fa, fb) = (files(&a), files(&b));
    let names: Vec<&str> = fa.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "BUILD.bazel",
            "WORKSPACE",
            "probeforge.bzl",
            "tools/probeforge"
        ]
    );
    assert!(fa == fb, "two runs wrote different bytes");
    // Downloading pinned what the signed listing says of every package.
    let ws = fs::read_to_string(a.join("WORKSPACE")).unwrap();
    for p in k1.packages.iter().chain(&k2.packages) {
        assert!(
            ws.contains(&p.url) && ws.contains(&p.sha256),
            "{}: {ws}",
            p.url
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(a.join("tools/probeforge"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn toolchain_packages_that_are_not_the_manifests_are_refused_naming_them() {
    let t = tmpdir();
    let stray = t.path().join("stray.deb");
    fs::write(&stray, b"not a package").unwrap();
    let (code, _, err) = run(&[
        "build",
        "--headers",
        "h.deb",
        "--toolchain",
        "llvm-14-debian12",
        "--toolchain-packages",
        stray.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("stray.deb") && err.contains("none of the packages"),
        "{err}"
    );
    // Without a pinned toolchain named, the packages mean nothing.
    let (code, _, err) = run(&[
        "build",
        "--headers",
        "h.deb",
        "--toolchain-packages",
        stray.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--toolchain NAME"), "{err}");
}
