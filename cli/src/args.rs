//! Command-line syntax (clap). Every command's help ends with examples.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "belay",
    version,
    about = "Version the filesystems of MicroPython boards (and plain folders) like git commits",
    long_about = "belay keeps deduplicated, compressed, content-addressed snapshots of boards and folders in a repository.\n\nExit codes: 0 success, 1 error, 2 usage error, 3 integrity problem found.",
    after_help = "Examples:\n  belay -r ~/belay-repo init\n  export BELAY_REPO=~/belay-repo\n  belay backup ./my-board -m 'before flashing'\n  belay log\n  belay restore my-board --to ./restored"
)]
pub struct Cli {
    /// Repository path (or set BELAY_REPO)
    #[arg(
        short = 'r',
        long = "repo",
        env = "BELAY_REPO",
        value_name = "PATH",
        global = true
    )]
    pub repo: Option<PathBuf>,

    /// Config file (default: $XDG_CONFIG_HOME/belay/config.toml or ~/.config/belay/config.toml)
    #[arg(long, global = true, env = "BELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout instead of human output
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars or informational messages
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More detail (e.g. every file a backup read)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,

    /// Never page long output (`log`); else BELAY_PAGER, PAGER or `less -FRX` on a terminal
    #[arg(long, global = true)]
    pub no_pager: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new, empty repository
    #[command(
        after_help = "Examples:\n  belay -r /mnt/share/belay init\n  belay -r ./old-style init --format 1   # loose objects, readable by belay before packs"
    )]
    Init {
        /// Repository format: 2 (packs, the default) or 1 (one file per object)
        #[arg(long = "format", value_name = "VERSION", env = "BELAY_FORMAT", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=2))]
        format: u64,
    },

    /// Convert a format-1 repository to format 2 (packs), in place
    #[command(
        after_help = "Packs every chunk and tree of the live snapshots, writes the index, then switches\nthe config to version 2; the loose files are removed by later gc runs after the\ngrace period, so other clients may keep reading meanwhile. Safe to interrupt and rerun.\n\nExample:\n  belay -r /mnt/share/belay migrate\n  belay -r /mnt/share/belay gc          # later: packs what backups added meanwhile"
    )]
    Migrate,

    /// Take a snapshot of a folder or a board
    #[command(
        after_help = "Examples:\n  belay backup ./examples/board-image\n  belay backup dir:/media/CIRCUITPY --name pico-7 -m 'field test' --meta site=lab\n  belay backup ./proj --exclude '*.pyc' --exclude '/build'\n  belay backup serial:/dev/ttyACM0 -m 'before flashing'   # a MicroPython board (see docs/boards.md)\n  belay backup serial:/dev/ttyUSB0@115200 --name greenhouse-3"
    )]
    Backup(BackupArgs),

    /// Show snapshot history, newest first
    #[command(
        after_help = "Examples:\n  belay log                 # every snapshot of every source\n  belay log my-board -n 5   # the last 5 snapshots of one source\n  belay log --oneline\n  belay log --source my-board --since '2 weeks ago'\n  belay log -- config.json      # only snapshots in which config.json changed\n  belay log 'my-board@{2026-03-01}' -n 1"
    )]
    Log(LogArgs),

    /// Show one snapshot in detail
    #[command(
        after_help = "Examples:\n  belay show my-board~1\n  belay show 'my-board@{2026-03-01}'"
    )]
    Show {
        /// Snapshot: id, id prefix, tag, source name, NAME~N
        rev: String,
    },

    /// List the files of a snapshot
    #[command(after_help = "Examples:\n  belay ls my-board\n  belay ls my-board:lib -R")]
    Ls {
        /// REV[:PATH]
        spec: String,
        /// List subdirectories recursively (`-r` is the global --repo)
        #[arg(short = 'R', long = "recursive")]
        recursive: bool,
    },

    /// Print a file of a snapshot to stdout
    #[command(after_help = "Example:\n  belay cat my-board:main.py")]
    Cat {
        /// REV:PATH
        spec: String,
    },

    /// Write a snapshot (or part of it) into a folder
    #[command(
        after_help = "Examples:\n  belay restore my-board --to ./restored\n  belay restore my-board~2:lib --to ./old-lib --include '*.py'\n  belay restore 1a2b3c4d --to ./x --dry-run\n  belay restore greenhouse-3~1 --to serial:/dev/ttyACM0 --delete   # put a board back (safety snapshot first)"
    )]
    Restore(RestoreArgs),

    /// Remove snapshots by id, or by a retention policy (restic's rules) per source; undo with undo-forget
    #[command(
        after_help = "Examples:\n  belay forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run\n  belay forget --keep-last 10 --source pico-7\n  belay forget --keep-within 30d --keep-monthly unlimited\n  belay forget 4f4425b2 pico-7~3   # these snapshots\n  belay forget --undo          # bring back what the last forget removed\n\nEach --keep-hourly/daily/weekly/monthly/yearly N keeps the newest snapshot of each of the N most recent hours/days/... that have snapshots; --keep-within counts back from the source's newest snapshot. Tagged snapshots are always kept. Nothing is deleted until `belay gc`."
    )]
    Forget(ForgetArgs),

    /// Bring back the snapshots the last forget removed (until gc empties the trash)
    #[command(name = "undo-forget", after_help = "Example:\n  belay undo-forget")]
    UndoForget,

    /// Delete objects no snapshot needs any more (two phases, with a grace period)
    #[command(
        after_help = "Examples:\n  belay gc --dry-run\n  belay gc                     # condemn garbage now, delete what was condemned 24h ago\n  belay gc --grace 2h\n  belay gc --now               # delete garbage at once (refused while a backup runs)\n\nAn unreferenced object is first condemned; a later gc deletes it once the grace period has passed by the share's clock and nothing references it again. While backups run, only objects condemned more than the grace period + 1h ago are deleted. See docs/maintenance.md."
    )]
    Gc(GcArgs),

    /// Verify the repository: refs, snapshots, trees, chunks (exit code 3 when something is wrong)
    #[command(
        after_help = "Examples:\n  belay check\n  belay check --read-data               # re-hash every chunk\n  belay check --read-data-subset 2/7     # the 2nd of 7 parts; 1/7 .. 7/7 cover everything\n  belay check --read-data-subset 10%     # a tenth, a different tenth each day"
    )]
    Check(CheckArgs),

    /// Store again what the repository lacks from live sources, and report what is lost for good
    #[command(
        after_help = "Examples:\n  belay repair ./proj                       # objects missing or torn, refilled from the folder\n  belay repair ./proj serial:/dev/ttyACM0 --read-data   # also damaged ones (re-hashes every chunk)\n  belay repair                              # no source: only report what is lost\n\nrepair runs check, then reads from each SOURCE the files whose size (on a board: whose hash) is that of a damaged file and stores every chunk the repository lacks. What no source has is listed per snapshot and path; exit code 3 when something is lost."
    )]
    Repair {
        /// Folders or boards (serial:PORT) that still hold the files
        sources: Vec<String>,
        /// Re-hash every chunk, so damaged (not only missing) ones are found
        #[arg(long)]
        read_data: bool,
    },

    /// Remove the gc lock and session files of processes that are gone (restic's unlock)
    #[command(
        after_help = "Examples:\n  belay unlock                 # only what no running process holds\n  belay unlock --remove-all    # also locks naming a process that seems to run\n\nA lock or session is stale when its process no longer runs on this host, or, from another host, when its heartbeat is more than an hour old. gc takes over a stale gc lock by itself; unlock is for a lock you know is dead (a machine that was switched off, a reused pid)."
    )]
    Unlock {
        /// Also remove locks and sessions whose process still seems to run
        #[arg(long)]
        remove_all: bool,
    },

    /// Sizes: snapshots, files, raw and stored bytes, dedup ratio, growth per snapshot
    #[command(
        after_help = "Examples:\n  belay stats\n  belay stats my-board~1       # one snapshot, and what only it holds"
    )]
    Stats {
        /// Only this snapshot (id, prefix, tag, source name, NAME~N)
        rev: Option<String>,
    },

    /// List every board and folder that has snapshots: id, firmware, snapshots, last backup, size
    #[command(
        after_help = "Examples:\n  belay sources\n  belay sources --json\n  belay sources rm old-board     # its snapshots go to the trash"
    )]
    Sources {
        #[command(subcommand)]
        action: Option<SourcesAction>,
    },

    /// Rename a source's history: every snapshot of OLD is shown as NEW, and NEW's next backup continues it
    #[command(
        after_help = "Examples:\n  belay rename e6614103e7452d2f greenhouse-3   # a board named by its unique id gets a name\n  belay rename proj proj-2024\n  belay rename old-pico pico-7 --force          # join pico-7's existing history\n\nSnapshots are immutable, so the rename is a record in the repository that every reader applies (docs/format.md §14); tags and snapshot ids stay as they are."
    )]
    Rename {
        /// The source's current name (`belay sources` lists them)
        old: String,
        /// Its new name
        new: String,
        /// Rename onto an existing source: OLD's snapshots join NEW's history (its head becomes the newer one)
        #[arg(short, long)]
        force: bool,
    },

    /// List serial ports and the MicroPython boards on them
    #[command(after_help = "Examples:\n  belay devices\n  belay devices --json")]
    Devices,

    /// Wait for boards to be plugged in and back each one up once per plug-in
    #[command(
        after_help = "Examples:\n  belay watch                                   # USB boards with the usual vendor ids, until stopped\n  belay watch --forget                          # then apply the config's retention policy\n  belay watch --port '/dev/serial/by-id/usb-MicroPython*'   # these paths (globs), not USB ids\n  belay watch --usb 2e8a --usb 10c4:ea60        # only these USB vendor[:product] ids\n  belay watch --exit-when-idle                  # back up the boards plugged in now, then exit\n  belay watch --max-backups 1 --timeout 10m --json   # for scripts: one JSON line per event\n\nA board is backed up under its identity name (machine.unique_id, as `belay backup serial:PORT` names it), once each time it appears; an unchanged board adds no snapshot (--allow-empty). A backup cut short by an unplug saves nothing, and the board's next plug-in tries again, reusing what was stored. Several boards are backed up at once. --json prints one JSON object per line and event. Ctrl-C exits 130; SIGTERM or SIGHUP ends running sessions cleanly (no snapshot) and exits 0. See docs/service.md for a systemd unit."
    )]
    Watch(WatchArgs),

    /// Show what changed between two snapshots, or between a snapshot and a folder or board now
    #[command(
        after_help = "Examples:\n  belay diff my-board                    # the latest snapshot against its parent\n  belay diff my-board~3 my-board --stat\n  belay diff shipped my-board -p -- main.py lib\n  belay diff my-board dir:./my-board     # the folder now, no snapshot written\n  belay diff pico-7 serial:/dev/ttyACM0  # the board now, compared by its own hashes\n  belay diff serial:/dev/ttyACM0         # the board now, against its latest snapshot\n  belay diff 'pico-7@{2026-03-01}' pico-7 --name-only\n  belay diff shipped serial:/dev/ttyACM0 --exit-code > /dev/null || echo 'the board changed (or the diff failed)'"
    )]
    Diff(DiffArgs),

    /// Name a snapshot (or delete a name with -d; list names without arguments)
    #[command(
        after_help = "Examples:\n  belay tag shipped-v1.2                 # the latest snapshot of the only source\n  belay tag shipped-v1.2 pico-7~1 -m 'sent to the field'\n  belay tag shipped-v1.2 pico-7 --force  # move it\n  belay tag -d shipped-v1.2"
    )]
    Tag(TagArgs),

    /// List tags: name, snapshot, source, time
    #[command(after_help = "Examples:\n  belay tags\n  belay tags --json")]
    Tags,

    /// Find which snapshots (and sources) hold paths matching a glob, or a content by SHA-256
    #[command(
        after_help = "Examples:\n  belay find config.json                 # in the latest snapshot of every source\n  belay find 'lib/**/*.py' --source pico-7 --all\n  belay find --hash 5a5a0c1e              # a content, anywhere, by SHA-256 prefix\n  belay find '*.py' --source serial:/dev/ttyACM0   # on the board now (no snapshot needed)\n  belay find --hash 5a5a0c1e --source ./proj       # in a folder now\n\nA glob without '/' matches file names at any depth; with '/' it matches whole paths ('**' spans directories)."
    )]
    Find(FindArgs),

    /// Write one snapshot (or a path inside it) as a single .zip, .tar or .tar.zst file, with a manifest
    #[command(
        after_help = "Examples:\n  belay export pico-7 -o pico-7.zip                 # attach a board's state to a bug report\n  belay export pico-7~2:lib -o lib.tar.zst\n  belay export shipped -o - | ssh host 'tar -x -C /srv/board'\n  belay export pico-7 -o state.bin --format tar\n\nThe archive holds the files with their mtimes and modes (symlinks too), and belay-manifest.json: the snapshot id, source, board facts, time, message, metadata, and each file's size and SHA-256. `belay import` reads it back byte for byte."
    )]
    Export(ExportArgs),

    /// Make a snapshot from a .zip, .tar, .tar.zst or .tar.gz file (from belay export, or any plain archive)
    #[command(
        after_help = "Examples:\n  belay import pico-7.zip --name pico-7-from-ana -m 'Ana\'s board image'\n  belay import project.tar.gz --name project\n  curl -s https://example.org/image.tar | belay import - --name image\n\nAn archive from `belay export` is checked against its belay-manifest.json (every file's size and SHA-256) and keeps the exact mtimes, modes and board facts; nothing is written when anything differs. Names with '..', absolute names and names given twice are refused."
    )]
    Import(ImportArgs),

    /// Show the audit journal: who backed up, restored, forgot, collected, tagged or imported what, and how it ended
    #[command(
        after_help = "Examples:\n  belay journal\n  belay journal --since '7 days ago' --kind restore --kind forget\n  belay journal --source pico-7 -n 20 --json\n\nEvery backup, restore (folder or board), forget, undo-forget, gc, tag, import and rename writes one entry (user, host, time, snapshots, counts, outcome) into journal/ in the repository, also when it fails. See docs/maintenance.md."
    )]
    Journal(JournalArgs),

    /// Copy snapshots, with their history, into another repository (a folder or object storage); only objects it lacks cross
    #[command(
        after_help = "Examples:\n  belay -r /mnt/share/belay copy --to s3:https://s3.example.com/fleet/belay --init\n  belay copy --to /mnt/usb/belay --source pico-7\n  belay -r s3:http://minio:9000/fleet copy --to ./local-copy pico-7~3 v1.2\n\nWithout revisions every live snapshot is copied; with revisions or --source, those snapshots and their live ancestors. Snapshot ids stay the same, heads move forward only, tags and renames come along. Credentials for object storage come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE."
    )]
    Copy(CopyArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  belay completions bash > ~/.local/share/bash-completion/completions/belay\n  belay completions zsh > ~/.zfunc/_belay        # with fpath+=~/.zfunc in ~/.zshrc\n  belay completions fish > ~/.config/fish/completions/belay.fish"
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },

    /// Print the man page (or write one page per command into a folder)
    #[command(
        after_help = "Examples:\n  belay man | man -l -\n  belay man --dir ~/.local/share/man/man1     # belay.1, belay-backup.1, ..."
    )]
    Man {
        /// Write belay.1 and belay-COMMAND.1 for every command into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SourcesAction {
    /// Remove a source: its snapshots go to the trash (as forget's), its head is deleted
    #[command(
        after_help = "Examples:\n  belay sources rm old-board --dry-run\n  belay sources rm old-board\n  belay undo-forget          # changed your mind (until a gc after the grace period)"
    )]
    Rm {
        /// The source's name (`belay sources` lists them)
        name: String,
        /// Show what would be removed; change nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// A folder (PATH or dir:PATH) or a board (serial:PORT[@BAUD])
    pub source: String,
    /// Source name (default: the folder's name); its history continues from its last snapshot
    #[arg(long)]
    pub name: Option<String>,
    /// Message recorded in the snapshot
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Leave out paths matching this gitignore-style glob (repeatable); .belayignore files are honoured too
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Metadata KEY=VALUE recorded in the snapshot (repeatable)
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Leave out files that cannot be read (with a warning) instead of failing
    #[arg(long)]
    pub skip_unreadable: bool,
    /// Save a snapshot even when nothing changed since the last one (as git commit --allow-empty)
    #[arg(long)]
    pub allow_empty: bool,
    /// Boards: compress on the board (default when the board can)
    #[arg(long, overrides_with = "no_deflate")]
    pub deflate: bool,
    /// Boards: never compress on the board
    #[arg(long)]
    pub no_deflate: bool,
    /// Boards: do not hash files on the board; pull every file
    #[arg(long)]
    pub no_hash: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Watch these paths (globs allowed, repeatable) instead of USB ids: a port appears when the path exists
    #[arg(long = "port", value_name = "PATH|GLOB")]
    pub ports: Vec<String>,
    /// USB VID or VID:PID (hex) of serial ports to back up (repeatable; default: the usual MicroPython and USB-serial vendors)
    #[arg(long = "usb", value_name = "VID[:PID]", conflicts_with = "ports")]
    pub usb: Vec<String>,
    /// Line speed for every board
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Message recorded in each snapshot
    #[arg(short, long, default_value = "belay watch")]
    pub message: String,
    /// Leave out board paths matching this gitignore-style glob (repeatable)
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Metadata KEY=VALUE recorded in each snapshot (repeatable)
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Save a snapshot even when a board has not changed since its last one
    #[arg(long)]
    pub allow_empty: bool,
    /// After each backup, apply the source's retention policy from the config file (as `belay forget --source NAME`)
    #[arg(long)]
    pub forget: bool,
    /// How long a port must be present before it is opened (a board that just appeared may still be booting)
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub settle: String,
    /// How often to look for ports
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: String,
    /// Exit after N backups have completed (saved or unchanged; failures do not count)
    #[arg(long, value_name = "N")]
    pub max_backups: Option<u64>,
    /// Exit once no backup is running and every port present has had its backup (at once when none is)
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Stop looking for boards after DURATION (running backups finish first)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Start from this snapshot and follow its parents (default: every snapshot)
    pub rev: Option<String>,
    /// Show at most N snapshots
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    pub max_count: Option<usize>,
    /// One line per snapshot
    #[arg(long)]
    pub oneline: bool,
    /// Only snapshots of this source
    #[arg(long, value_name = "NAME", conflicts_with = "rev")]
    pub source: Option<String>,
    /// Every snapshot of every source, newest first (the default without REV)
    #[arg(long, conflicts_with_all = ["rev", "source"])]
    pub all: bool,
    /// Only snapshots taken at or after this time (YYYY-MM-DD, 'YYYY-MM-DD HH:MM', '3 days ago')
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only snapshots taken at or before this time (a date includes that whole day)
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only snapshots in which one of these paths (or something below it) changed
    #[arg(last = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The old side: a snapshot (id, prefix, tag, source, NAME~N, NAME@{DATE}), optionally REV:PATH
    pub from: String,
    /// The new side: a snapshot (or REV:PATH), or a live source (dir:PATH, serial:PORT); default: FROM against its parent
    pub to: Option<String>,
    /// Show unified text diffs ("Binary files … differ" for binary content)
    #[arg(short = 'p', long = "patch", visible_short_alias = 'u')]
    pub patch: bool,
    /// Show changed lines per file and in total
    #[arg(long, conflicts_with = "name_only")]
    pub stat: bool,
    /// Show only the changed paths
    #[arg(long)]
    pub name_only: bool,
    /// Live folder: leave out paths matching this gitignore-style glob (repeatable), as backup --exclude
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Lines of context around each change with -p
    #[arg(short = 'U', long = "unified", value_name = "N", default_value_t = 3)]
    pub context: usize,
    /// Exit with 1 when there are differences, 0 when there are none (as git diff --exit-code)
    #[arg(long)]
    pub exit_code: bool,
    /// Only these paths (and what is below them)
    #[arg(last = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Tag name (without a name: list tags)
    #[arg(required_if_eq("delete", "true"))]
    pub name: Option<String>,
    /// Snapshot to tag (default: the latest snapshot of the only source)
    pub rev: Option<String>,
    /// Delete the tag NAME
    #[arg(short = 'd', long, conflicts_with_all = ["rev", "message", "force"])]
    pub delete: bool,
    /// Message stored with the tag
    #[arg(short, long)]
    pub message: Option<String>,
    /// Move the tag if it already exists
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob of paths to find (a glob without '/' matches names at any depth)
    #[arg(required_unless_present = "hash")]
    pub glob: Option<String>,
    /// Only in snapshots of this source; or a live folder or board (dir:PATH, serial:PORT) to search now
    #[arg(long, value_name = "NAME|SOURCE")]
    pub source: Option<String>,
    /// In every live snapshot, not only the latest of each source
    #[arg(long)]
    pub all: bool,
    /// Files whose SHA-256 starts with these hex digits (4 or more)
    #[arg(long, value_name = "SHA256")]
    pub hash: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// REV[:PATH]: the snapshot, and optionally a file or directory inside it
    pub spec: String,
    /// Target: a folder (PATH or dir:PATH) or a board (serial:PORT[@BAUD])
    #[arg(long = "to", value_name = "TARGET")]
    pub to: String,
    /// Restore only paths matching this glob (repeatable); a glob without '/' also matches file names
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Print what would be written, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Restore into a non-empty target, overwriting files of the same name (nothing is deleted)
    #[arg(long)]
    pub force: bool,
    /// Boards: remove files and directories the snapshot does not have
    #[arg(long)]
    pub delete: bool,
    /// Boards: do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Boards: do not snapshot the board before changing it
    #[arg(long)]
    pub no_safety_snapshot: bool,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (ids, prefixes, NAME~N…), instead of a policy
    #[arg(value_name = "SNAPSHOT", conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "keep_tags", "source"])]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots ('unlimited' keeps all)
    #[arg(long, value_name = "N")]
    pub keep_last: Option<String>,
    /// Keep the newest snapshot of each of the N most recent hours that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<String>,
    /// Keep the newest snapshot of each of the N most recent days that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<String>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<String>,
    /// Keep the newest snapshot of each of the N most recent months that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<String>,
    /// Keep the newest snapshot of each of the N most recent years that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<String>,
    /// Keep snapshots taken within DURATION of the source's newest (e.g. 1y6mo, 30d, 12h; mo = months)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep snapshots with a tag matching NAME (globs * ?); every tagged snapshot is kept anyway
    #[arg(long = "keep-tag", value_name = "NAME")]
    pub keep_tags: Vec<String>,
    /// Only this source
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Show what would be kept and removed, and why; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Bring back what the last forget removed (same as undo-forget)
    #[arg(long, conflicts_with_all = ["snapshots", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "keep_tags", "source", "dry_run"])]
    pub undo: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Show what would be deleted and condemned; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// How long a condemned object waits before a later gc deletes it (e.g. 24h, 2d, 30m = 30 minutes, 0)
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub grace: String,
    /// Delete unreferenced objects now, skipping the grace period (only when no backup is running)
    #[arg(long)]
    pub now: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read and re-hash every chunk (slow: reads the whole repository)
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read and re-hash part of the chunks: N/M (part N of M) or P% (a different P% each day)
    #[arg(long, value_name = "N/M|P%")]
    pub read_data_subset: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// REV[:PATH]: the snapshot, and optionally a directory or file inside it
    pub spec: String,
    /// The archive to write (.zip, .tar, .tar.zst); `-` for standard output (tar unless --format)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// zip, tar or tar.zst (default: from the file name)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Leave out belay-manifest.json (a plain archive)
    #[arg(long)]
    pub no_manifest: bool,
    /// Replace FILE if it exists
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The archive (.zip, .tar, .tar.zst, .tar.gz; recognised by content); `-` for standard input
    pub file: PathBuf,
    /// Source name for the snapshot (default: the exported snapshot's source, else the file's name)
    #[arg(long)]
    pub name: Option<String>,
    /// Message recorded in the snapshot (default: the exported snapshot's message)
    #[arg(short, long)]
    pub message: Option<String>,
    /// Metadata KEY=VALUE recorded in the snapshot (repeatable)
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// zip, tar, tar.zst or tar.gz, when the content does not tell
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct JournalArgs {
    /// Only entries at or after this time (YYYY-MM-DD, 'YYYY-MM-DD HH:MM', '3 days ago')
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only entries at or before this time (a date includes that whole day)
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only entries about this source
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Only entries of this kind: backup, restore, forget, undo-forget, gc, tag, import, rename (repeatable)
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only the last N entries
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    pub max_count: Option<usize>,
}

/// Rewrite git's `log -3` into `log -n 3` (clap has no numeric flags).
/// Only arguments of `log` before `--` are touched.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    // The subcommand is the first argument that is neither an option nor
    // the value of a global option that takes one.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if ["-r", "--repo", "--config", "--color"].contains(&a.as_ref()) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    if args.get(i).is_none_or(|a| a != "log") {
        return args;
    }
    let mut out: Vec<OsString> = args.drain(..=i).collect();
    let mut rest = args.into_iter();
    for a in rest.by_ref() {
        if a == "--" {
            out.push(a);
            break;
        }
        let count = a
            .to_str()
            .and_then(|s| s.strip_prefix('-'))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string);
        match count {
            Some(n) => {
                out.push("-n".into());
                out.push(n.into());
            }
            None => out.push(a),
        }
    }
    out.extend(rest);
    out
}

#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The repository to copy into: a folder, or s3:http(s)://host/bucket/prefix
    #[arg(long, value_name = "REPO")]
    pub to: PathBuf,
    /// Create the destination repository first (same chunker and format as this one)
    #[arg(long)]
    pub init: bool,
    /// Copy this source's history (repeatable)
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Snapshots to copy (ids, tags, SOURCE~N …); default: every live snapshot
    pub revs: Vec<String>,
}
