//! Debian's `chromium`, headless, as the tests' real browser: `--dump-dom` of a page (its DOM
//! after its scripts ran) and the page's console lines (`--enable-logging=stderr` prints each
//! console message and uncaught error as a `CONSOLE` line). And a loopback static server with
//! the MIME types a browser insists on (a stylesheet without `text/css` is refused).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !p.is_empty() {
                return PathBuf::from(p);
            }
        }
    }
    panic!("no chromium: .ci/setup installs it (apt-get install chromium)")
}

/// What the browser made of a page.
pub struct Dumped {
    pub dom: String,
    /// The page's console messages and uncaught errors.
    pub console: Vec<String>,
    pub stderr: String,
}

/// Loads `url` in headless chromium (its own fresh profile) and dumps the DOM.
pub fn dump_dom(url: &str) -> Dumped {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        // Root needs --no-sandbox; no GPU here.
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium {url}:\n{stderr}");
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(String::from)
        .collect();
    Dumped {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console,
        stderr,
    }
}

/// A `file://` URL of a path.
pub fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

/// Serves `root` on 127.0.0.1 (port 0) until the test process ends; the base URL.
pub fn serve(root: &Path) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let root = root.to_owned();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = answer(c, &root);
            });
        }
    });
    base
}

fn answer(mut c: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let raw = line.split_whitespace().nth(1).unwrap_or("/");
    let mut path = decode(raw.split('?').next().unwrap_or("/"));
    if path.ends_with('/') {
        path.push_str("index.html");
    }
    let file = root.join(path.trim_start_matches('/'));
    let body = match path.contains("..") {
        true => None,
        false => std::fs::read(&file).ok(),
    };
    let Some(body) = body else {
        return c.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let mime = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    c.write_all(&body)
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            s.get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
