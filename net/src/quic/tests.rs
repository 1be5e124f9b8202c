//! Tests over real QUIC sockets on 127.0.0.1. Deadlines come from `tokio::time::timeout`; no
//! sleep is used to synchronise.

use super::frame::write_frame;
use super::*;
use crate::wire::{SyncRequest, SyncResponse};
use hashgraph::{Hash, Signature};
use std::future::Future;
use tokio::sync::mpsc::error::TryRecvError;

const DEADLINE: Duration = Duration::from_secs(20);

fn secret(seed: &str) -> SecretKey {
    SecretKey::from_seed(seed.as_bytes())
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn allow_all() -> Authorizer {
    Arc::new(|_: &PublicKey| true)
}

fn allow_only(keys: Vec<PublicKey>) -> Authorizer {
    Arc::new(move |k: &PublicKey| keys.contains(k))
}

/// A node with a generous deadline, so that a loaded machine cannot fail the tests.
fn node(seed: &str, authorizer: Authorizer) -> (QuicTransport, Inbound) {
    let config = TransportConfig {
        timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    };
    node_with(seed, authorizer, config)
}

fn node_with(
    seed: &str,
    authorizer: Authorizer,
    config: TransportConfig,
) -> (QuicTransport, Inbound) {
    QuicTransport::bind(localhost(), secret(seed), authorizer, config).expect("bind")
}

async fn within<F: Future>(f: F) -> F::Output {
    timeout(DEADLINE, f).await.expect("test deadline")
}

/// The test host's answer to each request: deterministic, derived from the request.
fn answer(request: &Request) -> Response {
    match request {
        Request::Sync(req) => Response::Sync(SyncResponse {
            events: vec![vec![1, 2, 3], vec![req.limit as u8; 200]],
            known: req.known.clone(),
            more: req.limit > 1,
        }),
        Request::EagerSync(events) => Response::EagerSync {
            accepted: events.len() as u32,
        },
        Request::FetchEvents(ids) => Response::Events(ids.iter().map(|h| h.0.to_vec()).collect()),
        Request::Join(_) => Response::Join(crate::wire::JoinStatus::Pending),
        Request::FastSync => Response::Error("no anchored block".into()),
    }
}

/// Serves `inbound` with [`answer`]; every request seen is reported on the returned channel.
fn serve(mut inbound: Inbound) -> mpsc::UnboundedReceiver<(PublicKey, Request)> {
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(req) = inbound.recv().await {
            let _ = seen_tx.send((req.from, req.request.clone()));
            let response = answer(&req.request);
            req.respond(response);
        }
    });
    seen_rx
}

fn sample_requests() -> Vec<Request> {
    let a = secret("a").public_key();
    let b = secret("b").public_key();
    vec![
        Request::Sync(SyncRequest {
            known: vec![(a, 3), (b, 0)],
            limit: 7,
        }),
        Request::EagerSync(vec![vec![9; 1000], vec![], vec![1]]),
        Request::FetchEvents(vec![Hash([4; 32]), Hash::digest(b"x")]),
    ]
}

#[tokio::test]
async fn round_trip_of_every_message_type() {
    within(async {
        let (server, inbound) = node("server", allow_all());
        let mut seen = serve(inbound);
        let (client, _client_inbound) = node("client", allow_all());
        for req in sample_requests() {
            let resp = client
                .request(server.public_key(), server.local_addr(), req.clone())
                .await
                .expect("request");
            assert_eq!(resp, answer(&req));
            let (from, got) = seen.recv().await.expect("seen");
            assert_eq!(from, client.public_key());
            assert_eq!(got, req);
        }
        // And the other way round, on the server's own outbound connection.
        let (_, client_inbound) = (client.clone(), _client_inbound);
        let _seen_by_client = serve(client_inbound);
        let resp = server
            .request(
                client.public_key(),
                client.local_addr(),
                Request::EagerSync(vec![vec![1]]),
            )
            .await
            .expect("reverse request");
        assert_eq!(resp, Response::EagerSync { accepted: 1 });
    })
    .await;
}

#[tokio::test]
async fn sequential_and_concurrent_requests_reuse_one_connection() {
    within(async {
        let (server, inbound) = node("server", allow_all());
        let _seen = serve(inbound);
        let (client, _in) = node("client", allow_all());
        let (peer, addr) = (server.public_key(), server.local_addr());
        for i in 0..50u32 {
            let req = Request::Sync(SyncRequest {
                known: vec![],
                limit: i,
            });
            let resp = client
                .request(peer, addr, req.clone())
                .await
                .expect("request");
            assert_eq!(resp, answer(&req));
        }
        // More concurrent RPCs than max_pool: they queue on the semaphore, all succeed.
        let many = (0..10u32).map(|i| {
            let client = client.clone();
            async move {
                client
                    .request(peer, addr, Request::EagerSync(vec![vec![0]; i as usize]))
                    .await
            }
        });
        for (i, result) in futures_join_all(many).await.into_iter().enumerate() {
            assert_eq!(
                result.expect("concurrent request"),
                Response::EagerSync { accepted: i as u32 }
            );
        }
        assert_eq!(client.connections_opened(), 1);
        assert_eq!(server.connections_accepted(), 1);
        // Both sides read each stream to its end, so QUIC sent no STOP_SENDING frame either
        // way (one went for every answer, in a datagram of its own).
        let slot = client.inner.peers.lock().unwrap()[&peer].clone();
        let conn = slot.conn.lock().await.clone().expect("a pooled connection");
        let stats = conn.stats();
        assert_eq!(
            (stats.frame_tx.stop_sending, stats.frame_rx.stop_sending),
            (0, 0),
            "STOP_SENDING frames sent and received after 60 requests: {stats:?}"
        );
    })
    .await;
}

/// Runs the futures concurrently (as tasks) and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_key_outside_the_peer_set_is_refused() {
    within(async {
        let good = secret("good").public_key();
        let (server, inbound) = node("server", allow_only(vec![good]));
        let mut seen = serve(inbound);
        let (intruder, _in1) = node("intruder", allow_all());
        let (client, _in2) = node("good", allow_all());
        let (peer, addr) = (server.public_key(), server.local_addr());

        let err = intruder
            .request(peer, addr, sample_requests()[0].clone())
            .await
            .expect_err("an unauthorized key must be refused");
        match err {
            NetError::Refused { code, reason } => {
                assert_eq!(code, u64::from(codes::UNAUTHORIZED));
                assert!(reason.contains("peer set"), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(intruder.connections_opened(), 0);

        // The server serves the allowed key, and its handler only ever saw that one.
        let req = sample_requests()[1].clone();
        assert_eq!(
            client.request(peer, addr, req.clone()).await.unwrap(),
            answer(&req)
        );
        let (from, _) = seen.recv().await.expect("seen");
        assert_eq!(from, good);
        assert!(matches!(seen.try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(server.connections_accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn dialling_a_node_with_another_key_fails() {
    within(async {
        let (server, inbound) = node("server", allow_all());
        let mut seen = serve(inbound);
        let (client, _in) = node("client", allow_all());
        let expected = secret("someone else").public_key();
        let err = client
            .request(expected, server.local_addr(), sample_requests()[0].clone())
            .await
            .expect_err("the wrong key must be detected");
        match err {
            NetError::WrongPeer(mismatch) => {
                assert_eq!(mismatch.expected, expected);
                assert_eq!(mismatch.found, server.public_key());
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(client.connections_opened(), 0);
        assert!(matches!(seen.try_recv(), Err(TryRecvError::Empty)));
    })
    .await;
}

/// Sends raw `bytes` on a new stream of `conn` and reads the response frame.
async fn raw_exchange(conn: &Connection, bytes: &[u8]) -> Result<Response, NetError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    send.finish()?;
    read_frame(&mut recv, MAX_FRAME_BYTES).await
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_refused_and_service_goes_on() {
    within(async {
        let (server, inbound) = node("server", allow_all());
        let mut seen = serve(inbound);
        let (client, _in) = node("client", allow_all());
        let (peer, addr) = (server.public_key(), server.local_addr());
        // An authenticated connection, used raw.
        let slot = client.slot(peer);
        let (conn, _) = client.connection(&slot, peer, addr).await.expect("connect");

        let mut malformed = 5u32.to_be_bytes().to_vec();
        malformed.extend_from_slice(&[0xff; 5]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("malformed body", malformed),
            ("oversized length prefix", u32::MAX.to_be_bytes().to_vec()),
            ("text garbage", b"garbage, not a frame at all".to_vec()),
            ("truncated body", vec![0, 0, 0, 100, 1, 2]),
            ("trailing bytes", {
                let mut f = encode_frame(&sample_requests()[2]).unwrap();
                f.push(0);
                let len = (f.len() - 4) as u32;
                f[..4].copy_from_slice(&len.to_be_bytes());
                f
            }),
            ("bytes after the frame", {
                let mut f = encode_frame(&sample_requests()[2]).unwrap();
                f.push(0);
                f
            }),
        ];
        for (name, bytes) in cases {
            match raw_exchange(&conn, &bytes).await {
                Ok(Response::Error(text)) => {
                    assert!(text.contains("bad request"), "{name}: {text}")
                }
                other => panic!("{name}: expected an error response, got {other:?}"),
            }
        }
        assert!(
            conn.close_reason().is_none(),
            "the connection survives bad frames"
        );

        // The same client, and a new one, are still served; the handler saw only good requests.
        let req = sample_requests()[0].clone();
        assert_eq!(
            client.request(peer, addr, req.clone()).await.unwrap(),
            answer(&req)
        );
        let (other, _in2) = node("other", allow_all());
        assert_eq!(
            other.request(peer, addr, req.clone()).await.unwrap(),
            answer(&req)
        );
        assert_eq!(seen.recv().await.expect("seen").1, req);
        assert_eq!(seen.recv().await.expect("seen").1, req);
        assert!(matches!(seen.try_recv(), Err(TryRecvError::Empty)));
    })
    .await;
}

/// A QUIC client that completes TLS but not (or not correctly) the secp256k1 handshake.
fn raw_client() -> Endpoint {
    let mut endpoint = Endpoint::client(localhost()).expect("client endpoint");
    let crypto = tls::client_crypto().expect("client crypto");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

fn close_code(err: &quinn::ConnectionError) -> Option<u32> {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => {
            u32::try_from(close.error_code.into_inner()).ok()
        }
        _ => None,
    }
}

#[tokio::test]
async fn skipping_the_handshake_gets_no_request_through() {
    within(async {
        let config = TransportConfig {
            timeout: Duration::from_millis(1500),
            ..TransportConfig::default()
        };
        let (server, inbound) = node_with("server", allow_all(), config);
        let mut seen = serve(inbound);
        let endpoint = raw_client();

        // 1. A request frame where the hello belongs.
        let conn = endpoint
            .connect(server.local_addr(), tls::SERVER_NAME)
            .unwrap()
            .await
            .expect("tls connects");
        let frame = encode_frame(&sample_requests()[0]).unwrap();
        assert!(raw_exchange(&conn, &frame).await.is_err());
        assert_eq!(
            close_code(&conn.closed().await),
            Some(codes::HANDSHAKE_FAILED)
        );

        // 2. Requests on later streams while the hello stream stays silent: the server never
        //    reads them, and closes the connection at the handshake deadline.
        let conn = endpoint
            .connect(server.local_addr(), tls::SERVER_NAME)
            .unwrap()
            .await
            .expect("tls connects");
        let (_hello_send, _hello_recv) = conn.open_bi().await.unwrap();
        let pending = raw_exchange(&conn, &frame);
        let (result, reason) = tokio::join!(pending, conn.closed());
        assert!(result.is_err());
        assert_eq!(close_code(&reason), Some(codes::HANDSHAKE_TIMEOUT));

        // 3. A well-formed hello signed over something other than this session's exporter.
        let conn = endpoint
            .connect(server.local_addr(), tls::SERVER_NAME)
            .unwrap()
            .await
            .expect("tls connects");
        let key = secret("replayer");
        let hello = handshake::Hello {
            key: key.public_key(),
            signature: key.sign(&Hash::digest(b"another session")),
        };
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &hello).await.unwrap();
        send.finish().unwrap();
        assert_eq!(
            close_code(&conn.closed().await),
            Some(codes::HANDSHAKE_FAILED)
        );

        // 4. A hello with a signature that is not even valid.
        let conn = endpoint
            .connect(server.local_addr(), tls::SERVER_NAME)
            .unwrap()
            .await
            .expect("tls connects");
        let hello = handshake::Hello {
            key: key.public_key(),
            signature: Signature([0xff; 64]),
        };
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &hello).await.unwrap();
        send.finish().unwrap();
        assert_eq!(
            close_code(&conn.closed().await),
            Some(codes::HANDSHAKE_FAILED)
        );

        assert_eq!(server.connections_accepted(), 0);
        assert!(matches!(seen.try_recv(), Err(TryRecvError::Empty)));
        endpoint.close(VarInt::from_u32(0), b"done");
    })
    .await;
}

#[tokio::test]
async fn unanswered_requests_get_an_error_or_time_out() {
    within(async {
        let config = TransportConfig {
            timeout: Duration::from_millis(1500),
            ..TransportConfig::default()
        };
        let (server, mut inbound) = node("server", allow_all());
        let (client, _in) = node_with("client", allow_all(), config);
        let (peer, addr) = (server.public_key(), server.local_addr());
        let (held_tx, mut held_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Drop the first request unanswered; hold the second forever.
            let first = inbound.recv().await.expect("first");
            drop(first);
            let second = inbound.recv().await.expect("second");
            let _ = held_tx.send(second);
            std::future::pending::<()>().await;
        });
        let req = sample_requests()[0].clone();
        match client.request(peer, addr, req.clone()).await {
            Ok(Response::Error(text)) => assert!(text.contains("unanswered"), "{text}"),
            other => panic!("expected an error response, got {other:?}"),
        }
        let err = client
            .request(peer, addr, req)
            .await
            .expect_err("times out");
        assert!(matches!(err, NetError::Timeout), "{err:?}");
        assert!(held_rx.recv().await.is_some());
    })
    .await;
}

#[tokio::test]
async fn redials_after_the_peer_restarts_elsewhere() {
    within(async {
        let (server, inbound) = node("server", allow_all());
        let _seen = serve(inbound);
        let (client, _in) = node("client", allow_all());
        let peer = server.public_key();
        let req = sample_requests()[1].clone();
        assert_eq!(
            client
                .request(peer, server.local_addr(), req.clone())
                .await
                .unwrap(),
            answer(&req)
        );
        server.close().await;
        assert!(client
            .request(peer, server.local_addr(), req.clone())
            .await
            .is_err());

        // Same key, new address: the client dials again.
        let (restarted, inbound) = node("server", allow_all());
        let _seen2 = serve(inbound);
        assert_eq!(
            client
                .request(peer, restarted.local_addr(), req.clone())
                .await
                .unwrap(),
            answer(&req)
        );
        assert_eq!(client.connections_opened(), 2);

        // Forgetting the peer closes the pooled connection; the next request dials again.
        client.disconnect(&peer).await;
        assert_eq!(
            client
                .request(peer, restarted.local_addr(), req.clone())
                .await
                .unwrap(),
            answer(&req)
        );
        assert_eq!(client.connections_opened(), 3);
    })
    .await;
}

#[tokio::test]
async fn closing_ends_the_inbound_queue_and_refuses_requests() {
    within(async {
        let (server, mut inbound) = node("server", allow_all());
        let config = TransportConfig {
            timeout: Duration::from_millis(300),
            ..TransportConfig::default()
        };
        let (client, _in) = node_with("client", allow_all(), config);
        let addr = server.local_addr();
        let peer = server.public_key();
        server.close().await;
        drop(server);
        assert!(inbound.recv().await.is_none());
        assert!(client
            .request(peer, addr, sample_requests()[0].clone())
            .await
            .is_err());
    })
    .await;
}

#[tokio::test]
async fn oversized_requests_are_refused_locally() {
    within(async {
        let config = TransportConfig {
            max_frame_bytes: 1000,
            ..TransportConfig::default()
        };
        let (client, _in) = node_with("client", allow_all(), config);
        let err = client
            .request(
                secret("x").public_key(),
                localhost(),
                Request::EagerSync(vec![vec![0; 2000]]),
            )
            .await
            .expect_err("too large");
        assert!(matches!(
            err,
            NetError::Wire(WireError::FrameTooLarge { max: 1000, .. })
        ));
    })
    .await;
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let err = QuicTransport::bind(
        localhost(),
        secret("a"),
        allow_all(),
        TransportConfig::default(),
    )
    .expect_err("no runtime");
    assert!(matches!(err, NetError::NoRuntime));
}

#[tokio::test]
async fn max_pool_bounds_rpcs_in_flight_per_peer() {
    within(async {
        let config = TransportConfig {
            timeout: Duration::from_secs(10),
            max_pool: 1,
            ..TransportConfig::default()
        };
        let (server, mut inbound) = node("server", allow_all());
        let (client, _in) = node_with("client", allow_all(), config);
        let (peer, addr) = (server.public_key(), server.local_addr());
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(req) = inbound.recv().await {
                let _ = seen_tx.send(req);
            }
        });
        let request = |limit| {
            let client = client.clone();
            tokio::spawn(async move {
                let req = Request::Sync(SyncRequest {
                    known: vec![],
                    limit,
                });
                client.request(peer, addr, req).await
            })
        };
        let first = request(1);
        let held = seen_rx.recv().await.expect("first request");
        assert_eq!(client.slot(peer).permits.available_permits(), 0);
        let second = request(2);
        // While the first is in flight, the second waits for the peer's only permit. (A
        // negative check needs a bounded wait; it cannot fail spuriously.)
        let early = timeout(Duration::from_millis(300), seen_rx.recv()).await;
        assert!(
            early.is_err(),
            "the second request went out while the first was in flight"
        );
        let response = answer(&held.request);
        held.respond(response.clone());
        assert_eq!(first.await.unwrap().unwrap(), response);
        let next = seen_rx.recv().await.expect("second request");
        let response = answer(&next.request);
        next.respond(response.clone());
        assert_eq!(second.await.unwrap().unwrap(), response);
        assert_eq!(client.connections_opened(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_response_over_the_frame_limit_becomes_an_error() {
    within(async {
        let config = TransportConfig {
            max_frame_bytes: 100,
            ..TransportConfig::default()
        };
        let (server, inbound) = node_with("server", allow_all(), config);
        let _seen = serve(inbound);
        let (client, _in) = node("client", allow_all());
        // The answer to a sync carries a 200-byte event: over the server's limit.
        let req = Request::Sync(SyncRequest {
            known: vec![],
            limit: 3,
        });
        match client
            .request(server.public_key(), server.local_addr(), req)
            .await
        {
            Ok(Response::Error(text)) => assert!(text.contains("exceeds"), "{text}"),
            other => panic!("expected an error response, got {other:?}"),
        }
        // A small answer still goes through.
        let req = Request::EagerSync(vec![vec![1]]);
        assert_eq!(
            client
                .request(server.public_key(), server.local_addr(), req.clone())
                .await
                .unwrap(),
            answer(&req)
        );
    })
    .await;
}

/// A server on its own runtime, which can vanish without a word, as a killed process does.
fn server_on_own_runtime(
    seed: &'static str,
    listen: SocketAddr,
) -> (tokio::runtime::Runtime, QuicTransport) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async move {
        // The killed server's socket is released as its runtime winds down: the port may be
        // busy for a moment.
        let deadline = std::time::Instant::now() + DEADLINE;
        let (server, inbound) = loop {
            let config = TransportConfig::default();
            match QuicTransport::bind(listen, secret(seed), allow_all(), config) {
                Ok(bound) => break bound,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "port still busy");
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("bind: {e:?}"),
            }
        };
        let _seen = serve(inbound);
        server
    });
    (runtime, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanished_without_closing_is_dialled_again_after_a_timeout() {
    within(async {
        let (runtime, server) =
            tokio::task::spawn_blocking(|| server_on_own_runtime("server", localhost()))
                .await
                .unwrap();
        let (peer, addr) = (server.public_key(), server.local_addr());
        let config = TransportConfig {
            timeout: Duration::from_millis(500),
            ..TransportConfig::default()
        };
        let (client, _in) = node_with("client", allow_all(), config);
        let req = sample_requests()[1].clone();
        assert_eq!(
            client.request(peer, addr, req.clone()).await.unwrap(),
            answer(&req)
        );
        // Killed: its tasks stop with no CONNECTION_CLOSE sent, and its port is freed.
        tokio::task::spawn_blocking(move || {
            runtime.shutdown_timeout(Duration::from_secs(5));
            drop(server);
        })
        .await
        .unwrap();
        // Restarted on the same address with the same key.
        let (runtime, restarted) =
            tokio::task::spawn_blocking(move || server_on_own_runtime("server", addr))
                .await
                .unwrap();
        // The pooled connection is dead but not known to be: the first request may time out;
        // the client must then dial again rather than wait for the idle timeout.
        let mut answered = false;
        for _ in 0..3 {
            if let Ok(response) = client.request(peer, addr, req.clone()).await {
                assert_eq!(response, answer(&req));
                answered = true;
                break;
            }
        }
        assert!(answered, "the restarted peer was never reached");
        assert_eq!(client.connections_opened(), 2);
        tokio::task::spawn_blocking(move || {
            drop(restarted);
            runtime.shutdown_background();
        })
        .await
        .unwrap();
    })
    .await;
}

/// The gossip socket asks for a receive buffer of `SOCKET_BUFFER_BYTES` and gets it, up to
/// what the kernel allows (`net.core.rmem_max`); without asking it had Linux's default.
#[cfg(target_os = "linux")]
#[test]
fn the_gossip_socket_gets_large_buffers_as_far_as_the_kernel_allows() {
    let socket = gossip_socket(localhost()).expect("bind");
    let granted = recv_buffer_granted(&socket);
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("rmem_max")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(
        granted,
        SOCKET_BUFFER_BYTES.min(rmem_max),
        "rmem_max is {rmem_max}"
    );
}
