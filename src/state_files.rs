//! Small state files in the service's state directory (the token store, token usage, the
//! safety valve): written so that a reader sees the old file or the new one, never half of
//! one, read without following links, and changed under a lock. Root runs the CLI in a
//! directory the service user owns, so nothing here follows a link that user could plant.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `O_NOFOLLOW`: an open of a symbolic link fails instead of following it.
pub fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never half
/// of one: a temp file beside it, flushed to disk, renamed over it. The file keeps the owner
/// and mode it had; a new one gets the owner of its directory (the service's state
/// directory) and mode 0640.
///
/// The directory may belong to the service user while root runs `scim2ldap token …` in it, so
/// nothing here follows a link that user could plant: the temp file gets an unpredictable
/// name and is made with `O_EXCL|O_NOFOLLOW`, its mode and owner are set on the open file
/// (never by path, which could be swapped for a link to /etc/shadow between two calls), and
/// a store that is a symbolic link is refused.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("store"),
        std::process::id(),
        hex::encode(nonce)
    ));
    let (mode, owner) = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(link_refused(path)),
        Ok(m) => (m.permissions().mode() & 0o7777, Some(owner_of(&m))),
        Err(_) => (0o640, std::fs::metadata(dir).ok().map(|m| owner_of(&m))),
    };
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            // only root may give a file away; otherwise it stays ours, which is then right
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn link_refused(path: &Path) -> std::io::Error {
    std::io::Error::other(format!(
        "{} is a symbolic link; the bridge does not follow links in its state directory",
        path.display()
    ))
}

fn owner_of(m: &std::fs::Metadata) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    (m.uid(), m.gid())
}

/// The file at `path`, not following a symbolic link.
pub fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(no_follow())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => link_refused(path),
            _ => e,
        })?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// An exclusive lock on `file` (a lock file beside it, `flock`ed), so that two CLI
/// invocations cannot lose each other's change. Held until dropped.
pub struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    pub fn take(file: &Path) -> std::io::Result<Lock> {
        let path = sibling(file, ".lock");
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => link_refused(&path),
                _ => e,
            })?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Lock(f))
    }
}

/// This host's name as it may appear in a file name (per-host files beside a shared store).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect()
}

/// `tokens.json` → `tokens.json<suffix>` in the same directory.
pub fn sibling(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    store.with_file_name(name)
}
