//! The datadir's files in Babble's formats (INTERFACES.md §2): `priv_key`, `key.pub`,
//! `peers.json`, `peers.genesis.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hashgraph::{PeerSet, SecretKey};

/// File holding the secret key: 64 lower-case hex characters.
pub const PRIV_KEY: &str = "priv_key";
/// File holding the public key: `0X` + upper-case hex of the uncompressed key.
pub const KEY_PUB: &str = "key.pub";
/// The current validator set.
pub const PEERS: &str = "peers.json";
/// The validator set at round 0; Babble's docs also call it `genesis.peers.json`.
pub const GENESIS_PEERS: [&str; 2] = ["peers.genesis.json", "genesis.peers.json"];
/// Most bytes read from a peers file.
const MAX_PEERS_BYTES: u64 = 16 << 20;

/// A fresh random key.
pub fn random_key() -> SecretKey {
    use rand::RngCore;
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_bytes(&bytes) {
            return key;
        }
    }
}

/// Writes `priv_key` and `key.pub` (mode 0600), refusing to overwrite an existing key.
pub fn write_key(priv_path: &Path, pub_path: &Path, key: &SecretKey) -> anyhow::Result<()> {
    for path in [priv_path, pub_path] {
        if path.exists() {
            bail!(
                "{} already exists: refusing to overwrite a key (move it away first)",
                path.display()
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    write_private(priv_path, hex::encode(key.to_bytes()).as_bytes())?;
    write_private(pub_path, key.public_key().to_hex().as_bytes())?;
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads the node's key from `<datadir>/priv_key`, with an error that says what to do.
pub fn read_key(datadir: &Path) -> anyhow::Result<SecretKey> {
    let path = datadir.join(PRIV_KEY);
    let text = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() <= 4096 => bytes,
        Ok(_) => bail!("{} is not a key file (too large)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no key at {}: create one with `hearsay keygen --datadir {}`",
            path.display(),
            datadir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = String::from_utf8_lossy(&text);
    SecretKey::from_hex(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "{} does not hold a valid secp256k1 key ({e}): it must be 64 hex characters of a \
             scalar in (0, n); `hearsay keygen` writes one",
            path.display()
        )
    })
}

/// Reads a peers file.
pub fn read_peers(path: &Path) -> anyhow::Result<PeerSet> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "no {} : the datadir needs the validator set as a JSON array of \
                 {{\"NetAddr\",\"PubKeyHex\",\"Moniker\"}} (`hearsay testnet` writes one)",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot read {}: {e}", path.display())
        }
    })?;
    if meta.len() > MAX_PEERS_BYTES {
        bail!("{} is too large ({} bytes)", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice::<PeerSet>(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is malformed: {e}; expected a non-empty JSON array of \
             {{\"NetAddr\":\"host:port\",\"PubKeyHex\":\"0X04…\",\"Moniker\":\"name\"}} \
             with distinct keys",
            path.display()
        )
    })
}

/// The current and genesis validator sets of a datadir. Without a genesis file (or with an
/// unreadable one, as Babble does) the current set is the genesis set.
pub fn read_peer_sets(datadir: &Path) -> anyhow::Result<(PeerSet, PeerSet)> {
    let peers = read_peers(&datadir.join(PEERS))?;
    for name in GENESIS_PEERS {
        let path = datadir.join(name);
        if path.exists() {
            match read_peers(&path) {
                Ok(genesis) => return Ok((peers, genesis)),
                Err(e) => tracing::warn!("{e:#}; using peers.json as the genesis set"),
            }
        }
    }
    Ok((peers.clone(), peers))
}

/// Writes a peers file in Babble's layout (indented JSON array).
pub fn write_peers(path: &Path, peers: &PeerSet) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(peers)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `hearsay keygen` arguments.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Datadir to write `priv_key` and `key.pub` into [default: $HOME/.hearsay]
    #[arg(long, env = "HEARSAY_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Where to write the private key (overrides the datadir)
    #[arg(long = "priv")]
    pub priv_path: Option<PathBuf>,
    /// Where to write the public key (overrides the datadir)
    #[arg(long = "pub")]
    pub pub_path: Option<PathBuf>,
}

/// Runs `hearsay keygen`.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let datadir = match args.datadir {
        Some(d) => d,
        None => crate::config::default_datadir()?,
    };
    let priv_path = args.priv_path.unwrap_or_else(|| datadir.join(PRIV_KEY));
    let pub_path = args.pub_path.unwrap_or_else(|| datadir.join(KEY_PUB));
    let key = random_key();
    write_key(&priv_path, &pub_path, &key)?;
    println!("PublicKey: {}", key.public_key().to_hex());
    println!("Private key written to {}", priv_path.display());
    println!("Public key written to {}", pub_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_babble_format_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = random_key();
        write_key(&dir.path().join(PRIV_KEY), &dir.path().join(KEY_PUB), &key).unwrap();
        let priv_text = std::fs::read_to_string(dir.path().join(PRIV_KEY)).unwrap();
        assert_eq!(priv_text.len(), 64);
        assert!(priv_text
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let pub_text = std::fs::read_to_string(dir.path().join(KEY_PUB)).unwrap();
        assert!(
            pub_text.starts_with("0X04") && pub_text.len() == 2 + 130,
            "{pub_text}"
        );
        assert_eq!(pub_text[2..], pub_text[2..].to_uppercase());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(PRIV_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_key(dir.path()).unwrap().public_key(), key.public_key());
        let again = write_key(
            &dir.path().join(PRIV_KEY),
            &dir.path().join(KEY_PUB),
            &random_key(),
        );
        assert!(again
            .unwrap_err()
            .to_string()
            .contains("refusing to overwrite"));
    }

    #[test]
    fn bad_keys_and_peers_files_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains("hearsay keygen"), "{err}");
        std::fs::write(dir.path().join(PRIV_KEY), "zz").unwrap();
        let err = read_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not hold a valid secp256k1 key"), "{err}");
        std::fs::write(dir.path().join(PRIV_KEY), "00".repeat(32)).unwrap();
        assert!(
            read_key(dir.path()).is_err(),
            "the zero scalar is not a key"
        );

        let err = read_peer_sets(dir.path()).unwrap_err().to_string();
        assert!(err.contains("peers.json"), "{err}");
        std::fs::write(dir.path().join(PEERS), "[{\"NetAddr\": 3}]").unwrap();
        let err = read_peer_sets(dir.path()).unwrap_err().to_string();
        assert!(err.contains("malformed"), "{err}");
        std::fs::write(dir.path().join(PEERS), "[]").unwrap();
        assert!(read_peer_sets(dir.path()).is_err());
    }

    #[test]
    fn babble_peers_json_is_read_and_genesis_defaults_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = random_key().public_key();
        let b = random_key().public_key();
        // Lower-case and 0x-prefixed keys are accepted, as Babble writes them in places.
        let text = format!(
            "[{{\"NetAddr\":\"127.0.0.1:1337\",\"PubKeyHex\":\"{}\",\"Moniker\":\"node1\"}},\
             {{\"NetAddr\":\"127.0.0.1:1347\",\"PubKeyHex\":\"0x{}\",\"Moniker\":\"node2\"}}]",
            a.to_hex(),
            hex::encode(b.to_uncompressed())
        );
        std::fs::write(dir.path().join(PEERS), text).unwrap();
        let (peers, genesis) = read_peer_sets(dir.path()).unwrap();
        assert_eq!(peers, genesis);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers.peers()[1].pub_key, b);
        assert_eq!(peers.peers()[1].moniker, "node2");
        // The genesis file wins when present, under either name.
        let only_a = PeerSet::new(vec![peers.peers()[0].clone()]).unwrap();
        write_peers(&dir.path().join("genesis.peers.json"), &only_a).unwrap();
        let (_, genesis) = read_peer_sets(dir.path()).unwrap();
        assert_eq!(genesis, only_a);
    }
}
