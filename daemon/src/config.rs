//! `hearsay run` configuration: Babble's flags (INTERFACES.md §1), merged with the precedence
//! flag > `HEARSAY_*` environment > `hearsay.toml` (or `babble.toml`) in the datadir > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The flags of `hearsay run`. Every value is optional here: an absent flag (and absent
/// environment variable) falls back to the datadir's config file, then to the default.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Config, keys, peers and database [default: $HOME/.hearsay]
    #[arg(long, env = "HEARSAY_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Log level: debug, info, warn, error [default: info]
    #[arg(long, env = "HEARSAY_LOG")]
    pub log: Option<String>,
    /// Friendly name; the moniker in peers.json wins for our own key
    #[arg(long, env = "HEARSAY_MONIKER")]
    pub moniker: Option<String>,
    /// Start Suspended: serve HTTP and sync requests, create no events
    #[arg(short = 'R', long, env = "HEARSAY_MAINTENANCE_MODE", num_args = 0..=1, default_missing_value = "true")]
    pub maintenance_mode: Option<bool>,
    /// Gossip bind address (QUIC over UDP) [default: 127.0.0.1:1337]
    #[arg(short = 'l', long, env = "HEARSAY_LISTEN")]
    pub listen: Option<String>,
    /// Address other nodes dial [default: the listen address]
    #[arg(short = 'a', long, env = "HEARSAY_ADVERTISE")]
    pub advertise: Option<String>,
    /// Gossip RPC deadline [default: 1s]
    #[arg(short = 't', long, env = "HEARSAY_TIMEOUT")]
    pub timeout: Option<String>,
    /// Join and leave deadline [default: 10s]
    #[arg(short = 'j', long, env = "HEARSAY_JOIN_TIMEOUT")]
    pub join_timeout: Option<String>,
    /// On SIGINT/SIGTERM, stop without leaving the validator set (for a restart); by default a
    /// validator leaves first (PEER_REMOVE), as Babble's does
    #[arg(long, env = "HEARSAY_NO_LEAVE", num_args = 0..=1, default_missing_value = "true")]
    pub no_leave: Option<bool>,
    /// A joining node, or one whose peers pruned the history it lacks, jumps to the latest
    /// anchored block (block, frame and app snapshot, checked) instead of syncing the history
    #[arg(long, env = "HEARSAY_FAST_SYNC", num_args = 0..=1, default_missing_value = "true")]
    pub fast_sync: Option<bool>,
    /// With --fast-sync, a node this many rounds or more behind its peers (estimated from
    /// the events it lacks) fast-syncs instead of catching up by gossip; 0: only when peers
    /// pruned what it lacks. Hearsay's own flag [default: 200]
    #[arg(long, env = "HEARSAY_FAST_SYNC_ROUNDS")]
    pub fast_sync_rounds: Option<u64>,
    /// Concurrent gossip RPCs per peer [default: 2]
    #[arg(long, env = "HEARSAY_MAX_POOL")]
    pub max_pool: Option<usize>,
    /// Where apps connect to submit transactions [default: 127.0.0.1:1338]
    #[arg(short = 'p', long, env = "HEARSAY_PROXY_LISTEN")]
    pub proxy_listen: Option<String>,
    /// Where the node dials the app to deliver blocks [default: 127.0.0.1:1339]
    #[arg(short = 'c', long, env = "HEARSAY_CLIENT_CONNECT")]
    pub client_connect: Option<String>,
    /// No HTTP service
    #[arg(long, env = "HEARSAY_NO_SERVICE", num_args = 0..=1, default_missing_value = "true")]
    pub no_service: Option<bool>,
    /// HTTP service address [default: 127.0.0.1:8000]
    #[arg(short = 's', long, env = "HEARSAY_SERVICE_LISTEN")]
    pub service_listen: Option<String>,
    /// Gossip period while there is work [default: 10ms]
    #[arg(long, env = "HEARSAY_HEARTBEAT")]
    pub heartbeat: Option<String>,
    /// Gossip period while idle [default: 1s]
    #[arg(long, env = "HEARSAY_SLOW_HEARTBEAT")]
    pub slow_heartbeat: Option<String>,
    /// Most events in one sync response [default: 1000]
    #[arg(long, env = "HEARSAY_SYNC_LIMIT")]
    pub sync_limit: Option<u32>,
    /// Undetermined events per validator that suspend the node [default: 100]
    #[arg(long, env = "HEARSAY_SUSPEND_LIMIT")]
    pub suspend_limit: Option<usize>,
    /// Rounds of decided history kept in memory behind the last consensus round; older events
    /// are served from the database. Hearsay's own flag; at least 44 [default: 50]
    #[arg(long, env = "HEARSAY_MEMORY_ROUNDS")]
    pub memory_rounds: Option<u64>,
    /// Rounds of history kept in the database; older events are deleted, and a peer that
    /// needs them is told to fast-sync. 0 keeps everything. Hearsay's own flag; at least
    /// --memory-rounds [default: 0]
    #[arg(long, env = "HEARSAY_PRUNE_ROUNDS")]
    pub prune_rounds: Option<u64>,
    /// Accepted for Babble compatibility: the RocksDB store is always on
    #[arg(long, env = "HEARSAY_STORE", num_args = 0..=1, default_missing_value = "true")]
    pub store: Option<bool>,
    /// Database folder [default: <datadir>/db]
    #[arg(long, env = "HEARSAY_DB")]
    pub db: Option<PathBuf>,
    /// Deliver every stored block to the app again from block 0 (Babble's bootstrap, for an
    /// app that starts with a clean state); without it only blocks the app has not
    /// acknowledged are delivered
    #[arg(long, env = "HEARSAY_BOOTSTRAP", num_args = 0..=1, default_missing_value = "true")]
    pub bootstrap: Option<bool>,
}

/// The config file's keys: the flag names (Babble writes them in kebab case).
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    /// Accepted for Babble compatibility; the datadir holding the file wins.
    #[allow(dead_code)]
    datadir: Option<PathBuf>,
    log: Option<String>,
    moniker: Option<String>,
    maintenance_mode: Option<bool>,
    listen: Option<String>,
    advertise: Option<String>,
    timeout: Option<String>,
    join_timeout: Option<String>,
    no_leave: Option<bool>,
    fast_sync: Option<bool>,
    fast_sync_rounds: Option<u64>,
    max_pool: Option<usize>,
    proxy_listen: Option<String>,
    client_connect: Option<String>,
    no_service: Option<bool>,
    service_listen: Option<String>,
    heartbeat: Option<String>,
    slow_heartbeat: Option<String>,
    sync_limit: Option<u32>,
    suspend_limit: Option<usize>,
    memory_rounds: Option<u64>,
    prune_rounds: Option<u64>,
    store: Option<bool>,
    db: Option<PathBuf>,
    bootstrap: Option<bool>,
    /// Babble keys found in the file that this version does not act on yet.
    #[serde(skip)]
    ignored: Vec<String>,
}

/// Babble config keys a Babble datadir may hold that Hearsay does not act on yet (the cache
/// size, WebRTC). They are reported, not refused, so that a
/// Babble datadir still starts.
const NOT_YET_SUPPORTED: [&str; 9] = [
    "cache-size",
    "webrtc",
    "signal-addr",
    "signal-realm",
    "signal-skip-verify",
    "ice-addr",
    "ice-username",
    "ice-password",
    "loadpeers",
];

/// The resolved configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Config, keys, peers.
    pub datadir: PathBuf,
    /// Log filter.
    pub log: String,
    /// Friendly name (peers.json's wins).
    pub moniker: String,
    /// Start suspended.
    pub maintenance_mode: bool,
    /// Gossip bind address.
    pub listen: SocketAddr,
    /// Address other nodes dial.
    pub advertise: SocketAddr,
    /// Gossip RPC deadline.
    pub timeout: Duration,
    /// Join/leave deadline.
    pub join_timeout: Duration,
    /// Stop on a signal without leaving the validator set.
    pub no_leave: bool,
    /// Join, or catch up after peers pruned what we lack, from the latest anchored block.
    pub fast_sync: bool,
    /// With `fast_sync`: rounds behind from which a node fast-syncs (0: never for that).
    pub fast_sync_rounds: u64,
    /// Concurrent gossip RPCs per peer.
    pub max_pool: usize,
    /// Proxy listen address.
    pub proxy_listen: SocketAddr,
    /// App address.
    pub client_connect: SocketAddr,
    /// HTTP service address, `None` with `--no-service`.
    pub service_listen: Option<SocketAddr>,
    /// Gossip period while busy.
    pub heartbeat: Duration,
    /// Gossip period while idle.
    pub slow_heartbeat: Duration,
    /// Most events per sync response.
    pub sync_limit: u32,
    /// Undetermined events per validator that suspend the node.
    pub suspend_limit: usize,
    /// Rounds of decided history kept in memory.
    pub memory_rounds: u64,
    /// Rounds of history kept in the database (0: all).
    pub prune_rounds: u64,
    /// Database folder.
    pub db: PathBuf,
    /// Deliver every block to the app again from block 0.
    pub bootstrap: bool,
    /// Config-file keys that were ignored, to warn about once logging is up.
    pub ignored_keys: Vec<String>,
}

/// Names of the config files read from the datadir, in order of preference.
pub const CONFIG_FILES: [&str; 2] = ["hearsay.toml", "babble.toml"];

impl RunArgs {
    /// Merges the flags with the datadir's config file and the defaults.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let datadir = match &self.datadir {
            Some(d) => d.clone(),
            None => default_datadir()?,
        };
        let file = read_config_file(&datadir)?;
        let pick = |flag: Option<String>, file: Option<String>, default: &str| {
            flag.or(file).unwrap_or_else(|| default.to_string())
        };
        let listen = parse_addr("listen", &pick(self.listen, file.listen, "127.0.0.1:1337"))?;
        let advertise = match self.advertise.or(file.advertise) {
            Some(a) => parse_addr("advertise", &a)?,
            None => listen,
        };
        if advertise.ip().is_unspecified() || advertise.port() == 0 {
            bail!(
                "the address other nodes would dial, {advertise}, is not advertisable: give \
                 --advertise (or --listen) a concrete IP address and port, not 0.0.0.0 or port 0"
            );
        }
        let service_listen = if self.no_service.or(file.no_service).unwrap_or(false) {
            None
        } else {
            Some(parse_addr(
                "service-listen",
                &pick(self.service_listen, file.service_listen, "127.0.0.1:8000"),
            )?)
        };
        let max_pool = self.max_pool.or(file.max_pool).unwrap_or(2);
        if max_pool == 0 {
            bail!("--max-pool must be at least 1");
        }
        let sync_limit = self.sync_limit.or(file.sync_limit).unwrap_or(1000);
        let mut ignored = file.ignored;
        if self.store.or(file.store) == Some(false) {
            ignored.push("store=false (Hearsay always keeps its RocksDB store)".into());
        }
        if sync_limit == 0 {
            bail!("--sync-limit must be at least 1");
        }
        let memory_rounds = self.memory_rounds.or(file.memory_rounds).unwrap_or(50);
        let floor = hashgraph::Config::default().min_retained_rounds();
        if memory_rounds < floor {
            bail!(
                "--memory-rounds must be at least {floor}: the consensus keeps that many rounds \
                 so that every node judges late events alike"
            );
        }
        let prune_rounds = self.prune_rounds.or(file.prune_rounds).unwrap_or(0);
        if prune_rounds != 0 && prune_rounds < memory_rounds {
            bail!(
                "--prune-rounds ({prune_rounds}) must be 0 (keep everything) or at least \
                 --memory-rounds ({memory_rounds}): what is pruned from disk must have left memory"
            );
        }
        Ok(Config {
            log: pick(self.log, file.log, "info"),
            moniker: pick(self.moniker, file.moniker, ""),
            maintenance_mode: self
                .maintenance_mode
                .or(file.maintenance_mode)
                .unwrap_or(false),
            listen,
            advertise,
            timeout: parse_duration("timeout", &pick(self.timeout, file.timeout, "1s"))?,
            join_timeout: parse_duration(
                "join-timeout",
                &pick(self.join_timeout, file.join_timeout, "10s"),
            )?,
            no_leave: self.no_leave.or(file.no_leave).unwrap_or(false),
            fast_sync: self.fast_sync.or(file.fast_sync).unwrap_or(false),
            fast_sync_rounds: self
                .fast_sync_rounds
                .or(file.fast_sync_rounds)
                .unwrap_or(200),
            max_pool,
            proxy_listen: parse_addr(
                "proxy-listen",
                &pick(self.proxy_listen, file.proxy_listen, "127.0.0.1:1338"),
            )?,
            client_connect: parse_addr(
                "client-connect",
                &pick(self.client_connect, file.client_connect, "127.0.0.1:1339"),
            )?,
            service_listen,
            heartbeat: parse_duration("heartbeat", &pick(self.heartbeat, file.heartbeat, "10ms"))?,
            slow_heartbeat: parse_duration(
                "slow-heartbeat",
                &pick(self.slow_heartbeat, file.slow_heartbeat, "1s"),
            )?,
            sync_limit,
            suspend_limit: self.suspend_limit.or(file.suspend_limit).unwrap_or(100),
            memory_rounds,
            prune_rounds,
            ignored_keys: ignored,
            db: self.db.or(file.db).unwrap_or_else(|| datadir.join("db")),
            bootstrap: self.bootstrap.or(file.bootstrap).unwrap_or(false),
            datadir,
        })
    }
}

/// `$HOME/.hearsay`.
pub fn default_datadir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: give --datadir")?;
    Ok(PathBuf::from(home).join(".hearsay"))
}

/// Most bytes read from a config file.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_config_file(datadir: &Path) -> anyhow::Result<FileConfig> {
    for name in CONFIG_FILES {
        let path = datadir.join(name);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if meta.len() > MAX_CONFIG_BYTES {
            bail!(
                "{} is {} bytes; a config file may hold at most {MAX_CONFIG_BYTES}",
                path.display(),
                meta.len()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let bad = |e: toml::de::Error| {
            anyhow::anyhow!(
                "{} is not a valid config file: {}",
                path.display(),
                e.to_string().trim_end()
            )
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(bad)?;
        let mut ignored = Vec::new();
        for key in NOT_YET_SUPPORTED {
            if table.remove(key).is_some() {
                ignored.push(format!("{}: `{key}`", path.display()));
            }
        }
        let mut config: FileConfig = table.try_into().map_err(bad)?;
        config.ignored = ignored;
        return Ok(config);
    }
    Ok(FileConfig::default())
}

fn parse_addr(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| format!("--{flag} {text:?} is not a host:port address"))
}

/// Parses a Go duration: a sequence of decimal numbers with units ns, us (µs), ms, s, m, h,
/// such as "10ms", "1s" or "1m30s".
pub fn parse_duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("--{flag} {text:?} is not a duration (examples: 10ms, 1s, 1m30s)");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let nanos = value * nanos_per;
        if !nanos.is_finite() || nanos > 1e18 {
            return Err(bad());
        }
        total += Duration::from_nanos(nanos as u64);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_duration("t", "10ms").unwrap(),
            Duration::from_millis(10)
        );
        assert_eq!(parse_duration("t", "1s").unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_duration("t", "1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("t", "1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("t", "250us").unwrap(),
            Duration::from_micros(250)
        );
        assert_eq!(parse_duration("t", "0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "ms", "1x", "1e400s", "-1s", "1s2"] {
            assert!(parse_duration("t", bad).is_err(), "{bad:?} accepted");
        }
    }

    fn datadir_with(file: &str, contents: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), contents).unwrap();
        dir
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = datadir_with(
            "hearsay.toml",
            "listen = \"127.0.0.1:4000\"\nheartbeat = \"50ms\"\nmoniker = \"file\"\n",
        );
        let args = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            moniker: Some("flag".into()),
            ..RunArgs::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.moniker, "flag");
        assert_eq!(c.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(c.advertise, c.listen);
        assert_eq!(c.heartbeat, Duration::from_millis(50));
        assert_eq!(c.slow_heartbeat, Duration::from_secs(1));
        assert_eq!(c.proxy_listen, "127.0.0.1:1338".parse().unwrap());
        assert_eq!(c.service_listen, Some("127.0.0.1:8000".parse().unwrap()));
        assert_eq!(c.sync_limit, 1000);
        assert_eq!(c.memory_rounds, 50);
    }

    #[test]
    fn memory_rounds_below_the_consensus_floor_are_refused() {
        let dir = datadir_with("hearsay.toml", "memory-rounds = 60\n");
        let args = |flag: Option<u64>| RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            memory_rounds: flag,
            ..RunArgs::default()
        };
        assert_eq!(args(None).resolve().unwrap().memory_rounds, 60);
        assert_eq!(args(Some(44)).resolve().unwrap().memory_rounds, 44);
        let error = args(Some(10)).resolve().unwrap_err().to_string();
        assert!(
            error.contains("--memory-rounds must be at least 44"),
            "{error}"
        );
        let pruning = RunArgs {
            prune_rounds: Some(50),
            ..args(None)
        };
        let error = pruning.resolve().unwrap_err().to_string();
        assert!(error.contains("--prune-rounds (50) must be 0"), "{error}");
    }

    #[test]
    fn a_babble_toml_is_read() {
        let dir = datadir_with(
            "babble.toml",
            "proxy-listen = \"127.0.0.1:9338\"\nno-service = true\nstore = true\ncache-size = 500\n",
        );
        let c = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            ..RunArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.proxy_listen, "127.0.0.1:9338".parse().unwrap());
        assert_eq!(c.service_listen, None);
        // Babble keys not acted on yet are reported, not refused.
        assert_eq!(c.ignored_keys.len(), 1, "{:?}", c.ignored_keys);
        assert!(c.ignored_keys[0].ends_with("`cache-size`"));
        assert_eq!(c.db, dir.path().join("db"));
        assert!(!c.bootstrap);
    }

    #[test]
    fn a_malformed_file_names_the_file_and_line() {
        let dir = datadir_with(
            "hearsay.toml",
            "listen = \"127.0.0.1:4000\"\nheartbeat = = 3\n",
        );
        let err = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            ..RunArgs::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("hearsay.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let dir = datadir_with("hearsay.toml", "hartbeat = \"1s\"\n");
        let err = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            ..RunArgs::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("hartbeat"), "{err}");
    }

    #[test]
    fn an_unadvertisable_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            listen: Some("0.0.0.0:1337".into()),
            ..RunArgs::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("not advertisable"), "{err}");
        let ok = RunArgs {
            datadir: Some(dir.path().to_path_buf()),
            listen: Some("0.0.0.0:1337".into()),
            advertise: Some("10.0.0.7:1337".into()),
            ..RunArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(ok.advertise, "10.0.0.7:1337".parse().unwrap());
    }
}
