//! A loopback server speaking the GitHub Releases endpoints probeforge uses (get a release by
//! tag, create a release, upload an asset, download it), with their status codes, for testing
//! publication without reaching GitHub.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct State {
    /// tag -> (id, assets name -> bytes)
    pub releases: BTreeMap<String, (u32, BTreeMap<String, Vec<u8>>)>,
    pub token: String,
}

pub struct GitHub {
    pub base: String,
    pub state: Arc<Mutex<State>>,
}

impl GitHub {
    pub fn start(owner: &str, repo: &str, token: &str) -> GitHub {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..Default::default()
        }));
        let (st, b, prefix) = (
            state.clone(),
            base.clone(),
            format!("/repos/{owner}/{repo}"),
        );
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (st, b, prefix) = (st.clone(), b.clone(), prefix.clone());
                std::thread::spawn(move || {
                    let _ = serve(c, &st, &b, &prefix);
                });
            }
        });
        GitHub { base, state }
    }
}

fn release_json(
    base: &str,
    prefix: &str,
    tag: &str,
    id: u32,
    assets: &BTreeMap<String, Vec<u8>>,
) -> String {
    use sha2::Digest;
    serde_json::json!({
        "id": id, "tag_name": tag,
        "upload_url": format!("{base}/uploads{prefix}/releases/{id}/assets{{?name,label}}"),
        "assets": assets.iter().map(|(n, b)| serde_json::json!({
            "name": n, "size": b.len(),
            "digest": format!("sha256:{}", hex::encode(sha2::Sha256::digest(b))),
            "browser_download_url": format!("{base}/download/{id}/{n}"),
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

fn serve(
    mut c: std::net::TcpStream,
    st: &Mutex<State>,
    base: &str,
    prefix: &str,
) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut it = line.split_whitespace();
    let (method, target) = (
        it.next().unwrap_or("").to_owned(),
        it.next().unwrap_or("").to_owned(),
    );
    let (mut len, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let unesc = |s: &str| s.replace("%2B", "+").replace("%2b", "+");
    let mut s = st.lock().unwrap();
    let authed = auth == format!("Bearer {}", s.token);
    let (code, out): (u16, Vec<u8>) =
        if method == "GET" && path.starts_with(&format!("{prefix}/releases/tags/")) {
            let tag = unesc(&path[prefix.len() + "/releases/tags/".len()..]);
            match s.releases.get(&tag) {
                Some((id, a)) => (200, release_json(base, prefix, &tag, *id, a).into_bytes()),
                None => (404, br#"{"message":"Not Found"}"#.to_vec()),
            }
        } else if method == "POST" && path == format!("{prefix}/releases") {
            if !authed {
                (401, br#"{"message":"Bad credentials"}"#.to_vec())
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let tag = v["tag_name"].as_str().unwrap_or("").to_owned();
                if s.releases.contains_key(&tag) {
                    (422, br#"{"message":"Validation Failed"}"#.to_vec())
                } else {
                    let id = s.releases.len() as u32 + 1;
                    s.releases.insert(tag.clone(), (id, BTreeMap::new()));
                    (
                        201,
                        release_json(base, prefix, &tag, id, &BTreeMap::new()).into_bytes(),
                    )
                }
            }
        } else if method == "POST" && path.starts_with(&format!("/uploads{prefix}/releases/")) {
            let id: u32 = path
                .split('/')
                .rev()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let name = unesc(query.strip_prefix("name=").unwrap_or(""));
            match s.releases.values_mut().find(|(i, _)| *i == id) {
                _ if !authed => (401, br#"{"message":"Bad credentials"}"#.to_vec()),
                Some((_, assets)) if assets.contains_key(&name) => {
                    (422, br#"{"message":"already_exists"}"#.to_vec())
                }
                Some((_, assets)) => {
                    assets.insert(name, body);
                    (201, b"{}".to_vec())
                }
                None => (404, b"{}".to_vec()),
            }
        } else if method == "GET" && path.starts_with("/download/") {
            let mut p = path["/download/".len()..].splitn(2, '/');
            let id: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            let name = p.next().unwrap_or("");
            match s
                .releases
                .values()
                .find(|(i, _)| *i == id)
                .and_then(|(_, a)| a.get(name))
            {
                Some(b) => (200, b.clone()),
                None => (404, vec![]),
            }
        } else {
            (404, vec![])
        };
    drop(s);
    write!(c, "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n", out.len())?;
    c.write_all(&out)?;
    Ok(())
}
