//! The preview server serves the built book's files with the right types, and
//! nothing outside it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use xtask::serve::{content_type, fingerprint, resolve, serve_forever};

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn files_are_served_with_their_types_and_nothing_outside_the_book_is() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("book");
    std::fs::create_dir_all(book.join("generated")).unwrap();
    std::fs::write(book.join("index.html"), "<h1>hello</h1>").unwrap();
    std::fs::write(book.join("generated").join("a.svg"), "<svg/>").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = book.clone();
    std::thread::spawn(move || serve_forever(root, listener));

    let index = get(port, "/");
    assert!(
        index.starts_with("HTTP/1.1 200")
            && index.contains("text/html")
            && index.ends_with("<h1>hello</h1>"),
        "{index}"
    );
    let svg = get(port, "/generated/a.svg?v=1");
    assert!(svg.contains("image/svg+xml") && svg.ends_with("<svg/>"), "{svg}");
    assert!(get(port, "/missing.html").starts_with("HTTP/1.1 404"));
    assert!(get(port, "/../secret.txt").starts_with("HTTP/1.1 404"));
    assert!(resolve(&book, "/generated/../../secret.txt").is_none());
    assert_eq!(content_type(std::path::Path::new("x.woff2")), "font/woff2");
}

#[test]
fn the_fingerprint_changes_when_a_watched_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![dir.path().to_path_buf()];
    std::fs::write(dir.path().join("a.md"), "one").unwrap();
    let before = fingerprint(&paths).unwrap();
    assert_eq!(before, fingerprint(&paths).unwrap());
    std::fs::write(dir.path().join("b.md"), "two").unwrap();
    assert_ne!(
        before,
        fingerprint(&paths).unwrap(),
        "a new file changes the fingerprint"
    );
}
