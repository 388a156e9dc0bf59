//! The model storage the server exposes, confined to a real directory on disk.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{ApiError, ApiResult};
use crate::model::StorageSeed;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage root {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the seed's tree under `root` as sparse files (sizes are real, disk use is not).
pub fn materialize(root: &Path, seed: &StorageSeed) -> Result<(), StorageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    for file in &seed.tree {
        let relative = Path::new(&file.path);
        // Seed::check already refuses absolute paths and `..`; skip them again defensively.
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            continue;
        }
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let f = std::fs::File::create(&path).map_err(io(&path))?;
        f.set_len(file.size_bytes).map_err(io(&path))?;
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// `GET /v1/system/storage`: totals plus the size of every directory under `models/`.
pub fn usage(root: &Path, capacity_bytes: u64) -> Value {
    let used = dir_size(root);
    let mut models: Vec<(String, u64)> = std::fs::read_dir(root.join("models"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            (
                format!("models/{}", e.file_name().to_string_lossy()),
                dir_size(&e.path()),
            )
        })
        .collect();
    models.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    json!({
        "root": root.display().to_string(),
        "total_bytes": capacity_bytes,
        "used_bytes": used,
        "free_bytes": capacity_bytes.saturating_sub(used),
        "models": models
            .into_iter()
            .map(|(path, size)| json!({ "path": path, "size_bytes": size }))
            .collect::<Vec<_>>(),
    })
}

/// `relative` normalised lexically (`.` dropped, `..` popping a component), or why it is
/// refused: absolute, NUL bytes, or a `..` that climbs above the root.
fn normalise(relative: &str) -> ApiResult<PathBuf> {
    if relative.contains('\0') {
        return Err(ApiError::bad_request(
            "path must not contain NUL characters".to_owned(),
        ));
    }
    let mut kept: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(name) => kept.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if kept.pop().is_none() {
                    return Err(ApiError::bad_request(format!(
                        "path '{relative}' escapes the storage root ('..' above the root)"
                    )));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ApiError::bad_request(format!(
                    "path '{relative}' must be relative to the storage root"
                )));
            }
        }
    }
    Ok(kept.iter().collect())
}

/// Resolves `relative` inside `root`, refusing absolute paths, `..` that leaves the root after
/// normalisation, and symlinks whose target is outside it.
pub fn confine(root: &Path, relative: &str) -> ApiResult<PathBuf> {
    let requested = normalise(relative)?;
    let canonical_root = root
        .canonicalize()
        .map_err(|e| ApiError::internal(format!("storage root is unavailable: {e}")))?;
    let joined = canonical_root.join(&requested);
    let resolved = match joined.canonicalize() {
        Ok(p) => p,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(ApiError::Status(
                axum::http::StatusCode::NOT_FOUND,
                format!("path '{relative}' not found in storage"),
            ));
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidFilename
            ) =>
        {
            return Err(ApiError::bad_request(format!(
                "path '{relative}' is not a valid path: {e}"
            )));
        }
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot resolve path '{relative}': {e}"
            )));
        }
    };
    if !resolved.starts_with(&canonical_root) {
        return Err(ApiError::bad_request(format!(
            "path '{relative}' escapes the storage root (symlink target is outside)"
        )));
    }
    Ok(resolved)
}

fn rfc3339(time: std::time::SystemTime) -> Value {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// `GET /v1/system/storage/browse?path=`: one directory's entries, sorted by name.
pub fn browse(root: &Path, relative: &str) -> ApiResult<Value> {
    let dir = confine(root, relative)?;
    if !dir.is_dir() {
        return Err(ApiError::bad_request(format!(
            "path '{relative}' is not a directory"
        )));
    }
    let canonical_root = root
        .canonicalize()
        .map_err(|e| ApiError::internal(format!("storage root is unavailable: {e}")))?;
    let read = std::fs::read_dir(&dir)
        .map_err(|e| ApiError::internal(format!("cannot read directory '{relative}': {e}")))?;
    let mut entries = Vec::new();
    for entry in read.flatten() {
        // Follow symlinks only when they stay inside the root; others are not shown.
        let Ok(target) = entry.path().canonicalize() else {
            continue;
        };
        if !target.starts_with(&canonical_root) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&target) else {
            continue;
        };
        let is_dir = meta.is_dir();
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            json!({
                "name": entry.file_name().to_string_lossy(),
                "type": if is_dir { "directory" } else { "file" },
                "size_bytes": if is_dir { dir_size(&target) } else { meta.len() },
                "modified_at": meta.modified().map(rfc3339).unwrap_or(Value::Null),
            }),
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let shown = normalise(relative)?.to_string_lossy().into_owned();
    Ok(json!({
        "path": shown,
        "entries": entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    }))
}
