//! `cargo xtask serve`: a live preview of the book. It builds the book exactly as
//! `cargo xtask book --no-generate` does (our preprocessors included, so numbers,
//! claims and formulas render), serves `target/book/` on localhost, and rebuilds
//! whenever a source the book reads changes: its pages, the generated results, and
//! the code and exercises it includes.
//!
//! The server is deliberately small (std only, one request per connection, GET and
//! HEAD) and listens on 127.0.0.1, never on a public interface.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

/// The MIME type the browser needs for each file the book contains.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that a request path names, or `None` when it names nothing
/// there (including any attempt to climb out of `root`). `/` and folders mean their
/// `index.html`.
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("");
    let mut file = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => file.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

/// Answer one HTTP request from the files under `root`.
pub fn handle(root: &Path, mut stream: TcpStream) -> Result<()> {
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let (status, kind, body) = match (method, resolve(root, path)) {
        ("GET" | "HEAD", Some(file)) => {
            ("200 OK", content_type(&file), std::fs::read(&file)?)
        }
        ("GET" | "HEAD", None) => {
            ("404 Not Found", "text/plain; charset=utf-8", b"not found\n".to_vec())
        }
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n".to_vec(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    Ok(())
}

/// Serve `root` on `listener` until the process ends, one connection at a time.
pub fn serve_forever(root: PathBuf, listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        if let Err(e) = handle(&root, stream) {
            eprintln!("serve: {e:#}");
        }
    }
}

/// The folders whose files the book reads: a change in any of them triggers a
/// rebuild.
pub fn watched(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("book"), root.join("exercises")];
    if let Ok(entries) = std::fs::read_dir(root.join("chapters-code")) {
        dirs.extend(
            entries.flatten().map(|e| e.path().join("src")).filter(|p| p.is_dir()),
        );
    }
    dirs.push(root.join("book.toml"));
    dirs
}

/// A fingerprint of the watched files: their number and newest modification time.
/// Any edit, new file or deletion changes it.
pub fn fingerprint(paths: &[PathBuf]) -> Result<(usize, SystemTime)> {
    fn walk(p: &Path, acc: &mut (usize, SystemTime)) -> Result<()> {
        let meta = std::fs::metadata(p)
            .with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), acc)?;
            }
        } else {
            acc.0 += 1;
            acc.1 = acc.1.max(meta.modified()?);
        }
        Ok(())
    }
    let mut acc = (0, SystemTime::UNIX_EPOCH);
    for p in paths.iter().filter(|p| p.exists()) {
        walk(p, &mut acc)?;
    }
    Ok(acc)
}
