//! The user's config file (TOML): a default repository, names for boards,
//! retention policies per source and default excludes. Found at
//! `--config FILE`, `$BELAY_CONFIG`, `$XDG_CONFIG_HOME/belay/config.toml` or
//! `~/.config/belay/config.toml`; command-line flags and `BELAY_*`
//! variables win over it. See docs/config.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};
use belay_store::retention::{Policy, Within, parse_count};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The repository used when neither `-r` nor `BELAY_REPO` is given.
    pub repository: Option<PathBuf>,
    /// Names for boards: `NAME = { port = "/dev/ttyACM0" }` (then
    /// `serial:NAME` and a bare `NAME` as a backup source mean that port)
    /// or `NAME = { unique_id = "e661…" }` (that board's snapshots are kept
    /// under NAME).
    #[serde(default)]
    pub boards: BTreeMap<String, BoardAlias>,
    #[serde(default)]
    pub backup: BackupDefaults,
    /// What `belay watch` looks for when neither `--port` nor `--usb` is given.
    #[serde(default)]
    pub watch: WatchDefaults,
    /// Retention per source name; `"*"` for every source without its own.
    #[serde(default)]
    pub retention: BTreeMap<String, Retention>,
    /// Where it was read from (not in the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardAlias {
    pub port: Option<String>,
    pub baud: Option<u32>,
    pub unique_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupDefaults {
    /// gitignore-style globs left out of every backup (before `--exclude`).
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchDefaults {
    /// USB ids, `VID` or `VID:PID` in hex.
    #[serde(default)]
    pub usb: Vec<String>,
    /// Paths or globs of ports (e.g. udev links under /dev/serial/by-id).
    #[serde(default)]
    pub port: Vec<String>,
}

/// A count: a number or `"unlimited"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Count {
    Number(u32),
    Text(String),
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    pub keep_last: Option<Count>,
    pub keep_hourly: Option<Count>,
    pub keep_daily: Option<Count>,
    pub keep_weekly: Option<Count>,
    pub keep_monthly: Option<Count>,
    pub keep_yearly: Option<Count>,
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
}

static LOADED: OnceLock<Config> = OnceLock::new();

/// The config in effect (empty until [`load`] ran, or when there is none).
pub fn get() -> &'static Config {
    LOADED.get_or_init(Config::default)
}

/// Find and read the config file once per run. `explicit` is `--config`
/// or `$BELAY_CONFIG` (clap merges them): it must exist; the default
/// locations may be absent.
pub fn load(explicit: Option<&Path>) -> Result<&'static Config> {
    let (path, must_exist) = match explicit {
        Some(p) => (Some(p.to_path_buf()), true),
        None => (default_path(), false),
    };
    let config = match path {
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(text) => parse(&text, &p)?,
            // A default location that does not exist, or that this user
            // cannot even look into (another user's home): no config.
            Err(e)
                if !must_exist
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                Config::default()
            }
            Err(e) => bail!("config file {}: {e}", p.display()),
        },
        None => Config::default(),
    };
    Ok(LOADED.get_or_init(|| config))
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("belay").join("config.toml"))
}

/// Parse a config file; an error is one line naming the file and line.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let mut c: Config = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().replace('\n', " ");
        match line {
            Some(l) => anyhow!("config file {}, line {l}: {msg}", path.display()),
            None => anyhow!("config file {}: {msg}", path.display()),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(r) = &c.repository {
        c.repository = Some(expand(r, base));
    }
    for (name, b) in &c.boards {
        if b.port.is_none() && b.unique_id.is_none() {
            bail!(
                "config file {}: board {name:?} needs a port or a unique_id",
                path.display()
            );
        }
    }
    for (name, r) in &c.retention {
        r.policy()
            .map_err(|e| anyhow!("config file {}: [retention.{name}]: {e}", path.display()))?;
    }
    c.path = Some(path.to_path_buf());
    Ok(c)
}

/// `~/x` and paths relative to the config file's folder.
fn expand(p: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

impl Retention {
    pub fn policy(&self) -> Result<Policy> {
        let count = |key: &str, v: &Option<Count>| -> Result<Option<u32>> {
            match v {
                None => Ok(None),
                Some(Count::Number(n)) => Ok(Some(*n)),
                Some(Count::Text(s)) => parse_count(s).map(Some).map_err(|e| anyhow!("{key}: {e}")),
            }
        };
        let p = Policy {
            last: count("keep-last", &self.keep_last)?,
            hourly: count("keep-hourly", &self.keep_hourly)?,
            daily: count("keep-daily", &self.keep_daily)?,
            weekly: count("keep-weekly", &self.keep_weekly)?,
            monthly: count("keep-monthly", &self.keep_monthly)?,
            yearly: count("keep-yearly", &self.keep_yearly)?,
            within: self
                .keep_within
                .as_deref()
                .map(|s| Within::parse(s).map_err(|e| anyhow!("keep-within: {e}")))
                .transpose()?,
            tags: self.keep_tag.clone(),
        };
        p.validate().map_err(|e| anyhow!(e))?;
        Ok(p)
    }
}

impl Config {
    /// Board aliases and default excludes, applied to the parsed command
    /// line (flags stay: `--exclude` adds to the config's excludes).
    pub fn apply(&self, command: &mut crate::args::Command) {
        use crate::args::Command;
        let with_defaults = |ex: &mut Vec<String>| {
            let mut all = self.backup.exclude.clone();
            all.append(ex);
            *ex = all;
        };
        match command {
            Command::Backup(a) => {
                a.source = self.location(&a.source, true);
                with_defaults(&mut a.excludes);
            }
            Command::Restore(a) => a.to = self.location(&a.to, false),
            Command::Watch(a) => {
                with_defaults(&mut a.excludes);
                if a.ports.is_empty() && a.usb.is_empty() {
                    a.ports = self.watch.port.clone();
                    a.usb = self.watch.usb.clone();
                }
            }
            Command::Diff(a) => {
                a.from = self.location(&a.from, false);
                if let Some(to) = &mut a.to {
                    *to = self.location(to, false);
                }
                with_defaults(&mut a.excludes);
            }
            _ => {}
        }
    }

    /// A board alias's location: `serial:NAME` (and, where `bare` is
    /// allowed, `NAME` when no such folder exists) becomes `serial:PORT`.
    pub fn location(&self, arg: &str, bare: bool) -> String {
        let name = match arg.strip_prefix("serial:") {
            Some(n) => n,
            None if bare && !Path::new(arg).exists() => arg,
            None => return arg.to_string(),
        };
        match self.boards.get(name) {
            Some(BoardAlias {
                port: Some(port),
                baud,
                ..
            }) => match baud {
                Some(b) => format!("serial:{port}@{b}"),
                None => format!("serial:{port}"),
            },
            _ => arg.to_string(),
        }
    }

    /// The source names given to boards by unique id, for the library.
    pub fn board_names(&self) -> belay_core::board::BoardNames {
        belay_core::board::BoardNames(
            self.boards
                .iter()
                .filter_map(|(n, b)| Some((b.unique_id.clone()?, n.clone())))
                .collect(),
        )
    }

    /// The source name given to the board with this unique id.
    #[cfg(test)]
    fn name_for_unique_id(&self, uid: &str) -> Option<String> {
        self.board_names().for_unique_id(uid).map(str::to_string)
    }

    /// The retention policy for a source: its own, else `"*"`.
    pub fn retention_for(&self, source: &str) -> Option<Policy> {
        self.retention
            .get(source)
            .or_else(|| self.retention.get("*"))
            .and_then(|r| r.policy().ok())
    }

    pub fn has_retention(&self) -> bool {
        !self.retention.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            r#"
repository = "~/belay-repo"
[boards]
greenhouse-3 = { port = "/dev/ttyACM0" }
pico-7 = { unique_id = "E6614103E7452D2F" }
[backup]
exclude = ["*.pyc"]
[retention."*"]
keep-daily = 7
keep-monthly = "unlimited"
[retention.pico-7]
keep-last = 3
"#,
            Path::new("/etc/belay.toml"),
        )
        .unwrap();
        assert_eq!(c.location("greenhouse-3", true), "serial:/dev/ttyACM0");
        assert_eq!(
            c.location("serial:greenhouse-3", false),
            "serial:/dev/ttyACM0"
        );
        assert_eq!(c.location("greenhouse-3", false), "greenhouse-3");
        assert_eq!(
            c.name_for_unique_id("e6614103e7452d2f").as_deref(),
            Some("pico-7")
        );
        assert_eq!(c.retention_for("pico-7").unwrap().last, Some(3));
        assert_eq!(c.retention_for("other").unwrap().daily, Some(7));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse(
            "repository = \"/r\"\n\n[boards]\nx = { prot = \"/dev/x\" }\n",
            Path::new("/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("config file /c.toml, line 4:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse(
            "[retention.a]\nkeep-daily = \"many\"\n",
            Path::new("/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("keep-daily"), "{e}");
    }
}
