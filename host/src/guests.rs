//! Building this repository's guest components (the examples and the test
//! guests) from source, for `spool demo` and the tests. Needs the source
//! tree and `cargo`; an installed `spool` deploys prebuilt components.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target guests build for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests build with (small, `panic = "abort"`).
pub const PROFILE: &str = "guest";

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run cargo: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cargo build of {packages} failed ({status})\n{output}")]
    Failed {
        packages: String,
        status: std::process::ExitStatus,
        output: String,
    },
}

/// The workspace this binary was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Where [`build`] puts the components: `<root>/target/guests`.
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("guests")
}

/// Builds `packages` of the workspace at `root` into components and returns
/// the folder holding `<crate_name>.wasm` for each. Cargo's progress goes
/// to stderr when `verbose`; otherwise its output is kept for the error.
///
/// Uses its own target folder so that it can run while another cargo
/// (a running `cargo test`) holds the main one.
pub fn build(root: &Path, packages: &[&str], verbose: bool) -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = target_dir(root);
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir)
        .stdout(Stdio::null())
        .stderr(if verbose {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
    for package in packages {
        command.args(["--package", package]);
    }

    let output = command.output().map_err(Error::Spawn)?;
    if !output.status.success() {
        return Err(Error::Failed {
            packages: packages.join(", "),
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(target_dir.join(TARGET).join(PROFILE))
}

/// The file a package's component is written to: a library's name has
/// `_` for `-`, a binary's keeps the package name.
pub fn component_path(dir: &Path, package: &str) -> PathBuf {
    let library = dir.join(format!("{}.wasm", package.replace('-', "_")));
    if library.exists() {
        library
    } else {
        dir.join(format!("{package}.wasm"))
    }
}
