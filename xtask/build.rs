//! Embed the MathML stylesheet and fonts that ship inside the `pulldown-latex`
//! package.
//!
//! The book build must not run cargo or touch the network to find them, so they are
//! located once, here, and compiled into the xtask binary. `cargo metadata
//! --filter-platform` resolves only the packages of the platform being built for: a
//! fresh machine has downloaded exactly those (without the filter, cargo wants
//! every platform's packages, Windows-only ones too).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"),
    );
    let workspace = manifest_dir.parent().expect("xtask lives in the workspace");
    println!("cargo::rerun-if-changed={}", workspace.join("Cargo.lock").display());
    println!("cargo::rerun-if-changed=build.rs");

    let latex = match locate_pulldown_latex(workspace) {
        Ok(dir) => dir,
        Err(e) => panic!(
            "xtask build script: cannot locate the pulldown-latex package: {e}"
        ),
    };
    let mut files = vec![("styles.css".to_string(), latex.join("styles.css"))];
    let mut fonts: Vec<_> = std::fs::read_dir(latex.join("font"))
        .expect("pulldown-latex ships a font/ folder")
        .map(|e| e.expect("readable font entry").path())
        .collect();
    fonts.sort();
    for f in fonts {
        let name =
            f.file_name().expect("a file name").to_string_lossy().into_owned();
        files.push((format!("font/{name}"), f));
    }
    let mut code = String::from(
        "/// The MathML stylesheet and fonts of `pulldown-latex`: (path under `mathml/`, bytes).\n\
         pub const MATH_ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        assert!(path.is_file(), "missing {}", path.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"))
        .join("math_assets.rs");
    std::fs::write(out, code).expect("writing math_assets.rs");
}

/// The source folder of the `pulldown-latex` package in the cargo cache.
fn locate_pulldown_latex(workspace: &Path) -> Result<PathBuf, String> {
    let target = std::env::var("TARGET").map_err(|e| e.to_string())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            &target,
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "pulldown-latex"))
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("pulldown-latex is not in the dependency graph")?;
    Ok(Path::new(manifest)
        .parent()
        .ok_or("manifest without a folder")?
        .to_path_buf())
}
