//! `hearsay testnet`: N ready datadirs for a local network, and `testnet.json` describing them
//! for scripts and tests.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hashgraph::{Peer, PeerSet};
use serde::{Deserialize, Serialize};

use crate::datadir;

/// Arguments of `hearsay testnet`.
#[derive(clap::Args, Debug)]
pub struct TestnetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Folder to create the datadirs (`node0`, `node1`, …) and `testnet.json` in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Loopback address the nodes use.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
}

/// One node of `testnet.json`. Keep this stable: scripts and tests read it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TestnetNode {
    /// Its moniker.
    pub moniker: String,
    /// Its datadir.
    pub datadir: PathBuf,
    /// Gossip address (QUIC, UDP).
    pub listen: SocketAddr,
    /// Proxy address apps submit to.
    pub proxy_listen: SocketAddr,
    /// Address the node dials to deliver blocks to its app.
    pub client_connect: SocketAddr,
    /// HTTP service.
    pub service_listen: SocketAddr,
    /// Its public key, Babble's hex.
    pub pubkey: String,
}

/// Most nodes one call creates.
const MAX_NODES: usize = 128;

/// Runs `hearsay testnet`.
pub fn run(args: TestnetArgs) -> anyhow::Result<()> {
    let nodes = write_testnet(&args.dir, args.nodes, args.host)?;
    for n in &nodes {
        println!(
            "{}: hearsay run --datadir {}   (app on {}, proxy {}, http {})",
            n.moniker,
            n.datadir.display(),
            n.client_connect,
            n.proxy_listen,
            n.service_listen
        );
    }
    println!("wrote {}", args.dir.join("testnet.json").display());
    Ok(())
}

/// Creates the datadirs and `testnet.json`; returns the nodes.
pub fn write_testnet(
    dir: &Path,
    count: usize,
    host: std::net::IpAddr,
) -> anyhow::Result<Vec<TestnetNode>> {
    if count == 0 || count > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    if dir.join("testnet.json").exists() {
        bail!(
            "{} already holds a testnet: choose another --dir or remove it",
            dir.display()
        );
    }
    let mut ports = FreePorts::new(host);
    let mut nodes = Vec::with_capacity(count);
    let mut peers = Vec::with_capacity(count);
    for i in 0..count {
        let moniker = format!("node{i}");
        let datadir = dir.join(&moniker);
        let key = datadir::random_key();
        datadir::write_key(
            &datadir.join(datadir::PRIV_KEY),
            &datadir.join(datadir::KEY_PUB),
            &key,
        )?;
        let node = TestnetNode {
            moniker: moniker.clone(),
            datadir,
            listen: ports.udp()?,
            proxy_listen: ports.tcp()?,
            client_connect: ports.tcp()?,
            service_listen: ports.tcp()?,
            pubkey: key.public_key().to_hex(),
        };
        peers.push(Peer::new(
            key.public_key(),
            node.listen.to_string(),
            moniker.clone(),
        ));
        nodes.push(node);
    }
    let set = PeerSet::new(peers)?;
    for node in &nodes {
        datadir::write_peers(&node.datadir.join(datadir::PEERS), &set)?;
        datadir::write_peers(&node.datadir.join(datadir::GENESIS_PEERS[0]), &set)?;
        let toml = format!(
            "# Written by `hearsay testnet`; any `hearsay run` flag can be set here.\n\
             moniker = \"{}\"\nlisten = \"{}\"\nproxy-listen = \"{}\"\n\
             client-connect = \"{}\"\nservice-listen = \"{}\"\n",
            node.moniker, node.listen, node.proxy_listen, node.client_connect, node.service_listen
        );
        std::fs::write(node.datadir.join("hearsay.toml"), toml)?;
    }
    let json = serde_json::to_string_pretty(&nodes)?;
    std::fs::write(dir.join("testnet.json"), json + "\n")?;
    Ok(nodes)
}

/// Hands out distinct free loopback ports, holding each one until all are chosen so that no
/// port is given twice.
struct FreePorts {
    host: std::net::IpAddr,
    held_tcp: Vec<TcpListener>,
    held_udp: Vec<UdpSocket>,
}

impl FreePorts {
    fn new(host: std::net::IpAddr) -> FreePorts {
        FreePorts {
            host,
            held_tcp: Vec::new(),
            held_udp: Vec::new(),
        }
    }
    fn tcp(&mut self) -> anyhow::Result<SocketAddr> {
        let l = TcpListener::bind((self.host, 0)).context("no free TCP port")?;
        let addr = l.local_addr()?;
        self.held_tcp.push(l);
        Ok(addr)
    }
    fn udp(&mut self) -> anyhow::Result<SocketAddr> {
        let s = UdpSocket::bind((self.host, 0)).context("no free UDP port")?;
        let addr = s.local_addr()?;
        self.held_udp.push(s);
        Ok(addr)
    }
}

/// Reads a `testnet.json`.
pub fn read_testnet(path: &Path) -> anyhow::Result<Vec<TestnetNode>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is malformed", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_ready_datadirs_with_distinct_ports() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = write_testnet(dir.path(), 4, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            nodes,
            read_testnet(&dir.path().join("testnet.json")).unwrap()
        );
        let mut tcp: Vec<SocketAddr> = nodes
            .iter()
            .flat_map(|n| [n.proxy_listen, n.client_connect, n.service_listen])
            .collect();
        tcp.sort();
        tcp.dedup();
        assert_eq!(tcp.len(), 12);
        for n in &nodes {
            let (peers, genesis) = datadir::read_peer_sets(&n.datadir).unwrap();
            assert_eq!(peers, genesis);
            assert_eq!(peers.len(), 4);
            let key = datadir::read_key(&n.datadir).unwrap();
            assert_eq!(key.public_key().to_hex(), n.pubkey);
            let me = peers.peers().iter().find(|p| p.pub_key == key.public_key());
            assert_eq!(me.unwrap().net_addr, n.listen.to_string());
            let config = crate::config::RunArgs {
                datadir: Some(n.datadir.clone()),
                ..Default::default()
            }
            .resolve()
            .unwrap();
            assert_eq!(config.listen, n.listen);
            assert_eq!(config.proxy_listen, n.proxy_listen);
            assert_eq!(config.client_connect, n.client_connect);
            assert_eq!(config.service_listen, Some(n.service_listen));
            assert_eq!(config.moniker, n.moniker);
        }
        let again = write_testnet(dir.path(), 4, "127.0.0.1".parse().unwrap());
        assert!(again.unwrap_err().to_string().contains("already holds"));
    }
}
