//! What a backup leaves out of a source that is not a folder on this
//! machine (a board): `--exclude` globs and `.belayignore` files, with the
//! meaning the folder walker (ripgrep's `ignore`, see [`crate::dir`]) gives
//! them: an `--exclude` always excludes; a `.belayignore` applies to what is
//! below its directory, a deeper one taking precedence (`!pattern`
//! re-includes); nothing below an excluded directory is included again.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

pub use crate::dir::IGNORE_FILE;

#[derive(Clone, Default)]
pub struct IgnoreRules {
    excludes: Vec<Gitignore>,
    /// (directory relative to the root, "" for the root; its rules),
    /// deepest directory first.
    files: Vec<(Vec<u8>, Gitignore)>,
}

/// `/` + a relative path, as a `Path` (the matchers' root is `/`).
fn absolute(rel: &[u8]) -> PathBuf {
    Path::new("/").join(OsStr::from_bytes(rel))
}

fn parent(p: &[u8]) -> Option<&[u8]> {
    p.iter().rposition(|&b| b == b'/').map(|i| &p[..i])
}

fn is_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

impl IgnoreRules {
    /// Rules from gitignore-style `--exclude` globs (`*.pyc`, `/build`, `logs/`).
    pub fn new(excludes: &[String]) -> io::Result<IgnoreRules> {
        let mut rules = IgnoreRules::default();
        if !excludes.is_empty() {
            let mut b = GitignoreBuilder::new("/");
            for g in excludes {
                b.add_line(None, g).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("--exclude {g:?}: {e}"))
                })?;
            }
            rules.excludes.push(
                b.build()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
            );
        }
        Ok(rules)
    }

    /// Add the rules of the `.belayignore` file at `file` (a relative
    /// path). Lines that are not valid globs are skipped, as the folder
    /// walker skips them; they come back as warnings.
    pub fn add_file(&mut self, file: &[u8], content: &[u8]) -> Vec<String> {
        let dir = parent(file).unwrap_or(b"").to_vec();
        let mut b = GitignoreBuilder::new(absolute(&dir));
        let mut warnings = Vec::new();
        for line in String::from_utf8_lossy(content).lines() {
            if let Err(e) = b.add_line(None, line) {
                warnings.push(format!(
                    "{}: {line:?} is not a valid pattern, ignored: {e}",
                    String::from_utf8_lossy(file)
                ));
            }
        }
        match b.build() {
            Ok(gi) => {
                self.files.push((dir, gi));
                self.sort();
            }
            Err(e) => warnings.push(format!("{}: {e}", String::from_utf8_lossy(file))),
        }
        warnings
    }

    /// Both sets of rules: a path is left out if either leaves it out
    /// (for a directory with `.belayignore` files from two places, the
    /// deeper file is asked first, as always).
    pub fn merge(&mut self, other: &IgnoreRules) {
        self.excludes.extend(other.excludes.iter().cloned());
        self.files.extend(other.files.iter().cloned());
        self.sort();
    }

    fn sort(&mut self) {
        let depth = |d: &[u8]| {
            if d.is_empty() {
                0
            } else {
                1 + d.iter().filter(|&&c| c == b'/').count()
            }
        };
        self.files.sort_by_key(|(d, _)| std::cmp::Reverse(depth(d)));
    }

    pub fn is_empty(&self) -> bool {
        self.excludes.is_empty() && self.files.is_empty()
    }

    /// Whether a backup leaves `path` (relative, `/`-separated) out: it or
    /// one of its directories matches.
    pub fn is_ignored(&self, path: &[u8], is_dir: bool) -> bool {
        if self.is_empty() || path.is_empty() {
            return false;
        }
        if parent(path).is_some_and(|d| self.is_ignored(d, true)) {
            return true;
        }
        let full = absolute(path);
        if self
            .excludes
            .iter()
            .any(|x| x.matched(&full, is_dir).is_ignore())
        {
            return true;
        }
        for (dir, gi) in &self.files {
            if !is_below(path, dir) {
                continue;
            }
            let m = gi.matched(&full, is_dir);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        false
    }
}

/// Whether `path` is a `.belayignore` file.
pub fn is_ignore_file(path: &[u8]) -> bool {
    path.rsplit(|&b| b == b'/').next() == Some(IGNORE_FILE.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_files_and_precedence() {
        let mut r = IgnoreRules::new(&["*.pyc".to_string()]).unwrap();
        assert!(
            r.add_file(b".belayignore", b"data/\n*.log\n!keep.log\n")
                .is_empty()
        );
        r.add_file(b"lib/.belayignore", b"secret.py\n!x.pyc\n");
        assert!(r.is_ignored(b"a.pyc", false));
        assert!(r.is_ignored(b"lib/x.pyc", false), "--exclude wins");
        assert!(r.is_ignored(b"data", true));
        assert!(r.is_ignored(b"data/log.csv", false), "below an ignored dir");
        assert!(
            !r.is_ignored(b"data", false),
            "data/ matches directories only"
        );
        assert!(r.is_ignored(b"lib/run.log", false));
        assert!(!r.is_ignored(b"lib/keep.log", false));
        assert!(r.is_ignored(b"lib/secret.py", false));
        assert!(
            !r.is_ignored(b"secret.py", false),
            "lib's rules stay in lib"
        );
        assert!(!r.is_ignored(b"main.py", false));
        assert!(is_ignore_file(b"lib/.belayignore"));
        assert!(!is_ignore_file(b"lib/x.belayignore"));
    }
}
