//! A static file server on 127.0.0.1 (port 0) for repository tests, with fault injection:
//! HTTP errors, connection resets, truncated or corrupted bodies, slow responses. Serves ETags
//! and answers `If-None-Match` with 304. Stops when dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status the next `n` times.
    Status(u16, u32),
    /// Close the connection without answering, `n` times.
    Reset(u32),
    /// Send the headers and half the body, then close, `n` times.
    Truncate(u32),
    /// Flip bytes in the body, always.
    Corrupt,
    /// Wait this long before answering, always.
    Slow(Duration),
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    hits: HashMap<String, Vec<u16>>,
}

pub struct Server {
    pub base: String,
    port: u16,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start(root: PathBuf) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let (s2, st2) = (stop.clone(), state.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, st) = (root.clone(), st2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &root, &st);
                });
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
            stop,
            state,
        }
    }

    pub fn fault(&self, path: &str, f: Fault) {
        self.state.lock().unwrap().faults.insert(path.to_owned(), f);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Statuses answered for a path (0 for a reset).
    pub fn hits(&self, path: &str) -> Vec<u16> {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    pub fn all_hits(&self) -> HashMap<String, Vec<u16>> {
        self.state.lock().unwrap().hits.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn etag(body: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", &hex::encode(sha2::Sha256::digest(body))[..16])
}

fn handle(mut c: TcpStream, root: &std::path::Path, st: &Mutex<State>) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let raw_path = parts.next().unwrap_or("/").to_owned();
    let mut inm = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                inm = Some(v.trim().to_owned());
            }
        }
    }
    let path = raw_path.split('?').next().unwrap_or("/").to_owned();
    let decoded = percent_decode(&path);
    let fault = {
        let mut s = st.lock().unwrap();
        let f = s.faults.get(&path).cloned();
        // Count down the one-shot faults.
        if let Some(f) = &f {
            let next = match f {
                Fault::Status(code, n) if *n > 1 => Some(Fault::Status(*code, n - 1)),
                Fault::Reset(n) if *n > 1 => Some(Fault::Reset(n - 1)),
                Fault::Truncate(n) if *n > 1 => Some(Fault::Truncate(n - 1)),
                Fault::Status(..) | Fault::Reset(_) | Fault::Truncate(_) => None,
                other => Some(other.clone()),
            };
            match next {
                Some(n) => s.faults.insert(path.clone(), n),
                None => s.faults.remove(&path),
            };
        }
        f
    };
    let record = |code: u16| {
        st.lock()
            .unwrap()
            .hits
            .entry(path.clone())
            .or_default()
            .push(code)
    };
    if let Some(Fault::Slow(d)) = &fault {
        std::thread::sleep(*d);
    }
    if let Some(Fault::Reset(_)) = fault {
        record(0);
        let _ = c.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    if let Some(Fault::Status(code, _)) = fault {
        record(code);
        write!(
            c,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    // A directory answers with its recorded listing (a bucket's XML listing, say).
    let file = if decoded.ends_with('/') {
        root.join(decoded.trim_start_matches('/')).join("index.xml")
    } else {
        root.join(decoded.trim_start_matches('/'))
    };
    let Ok(mut body) = std::fs::read(&file) else {
        record(404);
        write!(
            c,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    let tag = etag(&body);
    if inm.as_deref() == Some(tag.as_str()) {
        record(304);
        write!(
            c,
            "HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    if let Some(Fault::Corrupt) = fault {
        let mid = body.len() / 2;
        for b in body.iter_mut().skip(mid).take(64) {
            *b ^= 0xff;
        }
    }
    record(200);
    write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {tag}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method == "HEAD" {
        return Ok(());
    }
    if let Some(Fault::Truncate(_)) = fault {
        c.write_all(&body[..body.len() / 2])?;
        c.flush()?;
        let _ = c.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    c.write_all(&body)?;
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
