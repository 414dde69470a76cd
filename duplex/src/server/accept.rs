//! One connection from TCP to its route: TLS, the request, routing, the
//! upgrade hook, the handshake (negotiated by the engine), and plain HTTP
//! answers.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use duplex_proto::handshake::server::{self as hs, Choice, Request};
use duplex_proto::handshake::{choose_protocol, HandshakeLimits, Preference};
use duplex_proto::{Connection, HandshakeError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::{self, BodyLimits};
use super::respond::respond;
use super::state::ServerState;
use super::{BoxFuture, HttpResponse, Route, Server, ServerSocket, SocketRoute, UpgradeDecision};
use crate::hub::{Attached, Hub};
use crate::request::UpgradeRequest;
use crate::transport::MaybeTlsStream;
use crate::warn_limit::RateLimited;
use crate::websocket::WebSocket;

/// Runs one connection: the handshake phase in a boxed future that is freed
/// once it is over (it is large: TLS, parsing, the response), then the
/// route. A long-lived idle connection so keeps only what its route needs.
pub(crate) async fn handle_connection(state: &Arc<ServerState>, tcp: TcpStream, addr: SocketAddr) {
    let Some(upgraded) = Box::pin(establish(state, tcp, addr)).await else {
        return;
    };
    let (attached, running) = start_route(upgraded);
    running.await;
    drop(attached);
}

/// Hands the connection to its route. Not inline in `handle_connection`:
/// values moved out of an async fn's locals still take room in its future
/// for as long as they are in scope, and that future is allocated for
/// every connection for its whole life.
fn start_route(upgraded: Upgraded) -> (Attached, BoxFuture) {
    let Upgraded {
        route,
        ws,
        request,
        hub,
        attached,
    } = upgraded;
    let running = route(ws, request, &hub, attached.id());
    (attached, running)
}

/// A connection past its handshake, ready for its route.
struct Upgraded {
    route: SocketRoute,
    ws: ServerSocket,
    request: UpgradeRequest,
    hub: Arc<Hub>,
    attached: Attached,
}

/// TLS, the request, routing and the upgrade. Plain HTTP routes and
/// rejections are answered here; `None` means the connection is done.
async fn establish(state: &Arc<ServerState>, tcp: TcpStream, addr: SocketAddr) -> Option<Upgraded> {
    let server = &state.server;
    let _ = tcp.set_nodelay(true);
    let over_limit = state.active.load(Ordering::SeqCst) > state.max_connections;
    let stream = match tokio::time::timeout(server.handshake_timeout, secure(server, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            static TLS_FAILED: RateLimited = RateLimited::new();
            TLS_FAILED.warn(|left_out| {
                tracing::warn!("TLS handshake with {addr} failed: {e} ({left_out} more not logged)")
            });
            return None;
        }
        Err(_) => return None,
    };
    // The request's head and, for a route that reads one, its body.
    let deadline = tokio::time::Instant::now() + server.handshake_timeout;
    let read = tokio::time::timeout_at(deadline, read_request(stream, &server.limits)).await;
    let (mut stream, request, leftover) = match read {
        Ok(Ok(Some(parts))) => parts,
        Ok(Ok(None)) | Err(_) => return None,
        Ok(Err((mut stream, error))) => {
            respond(&mut stream, &hs::reject_response(&error)).await;
            return None;
        }
    };
    if over_limit {
        let error = HandshakeError::new(503, "too many connections");
        respond(&mut stream, &hs::reject_response(&error)).await;
        return None;
    }
    let found = server.routes.iter().find_map(|(pattern, route)| {
        pattern
            .matches(request.path())
            .map(|params| (route.clone(), params))
    });
    let Some((route, params)) = found else {
        let error = HandshakeError::new(404, "no such path");
        respond(&mut stream, &hs::reject_response(&error)).await;
        return None;
    };
    let request = UpgradeRequest::new(request, params, Some(addr));
    let route = match route {
        Route::Http(f) => {
            let r = f(&request);
            respond(
                &mut stream,
                &hs::http_response(r.status, &r.content_type, &r.body, &r.headers),
            )
            .await;
            return None;
        }
        Route::HttpAsync(f) => {
            let r = tokio::time::timeout_at(deadline, f(&request))
                .await
                .unwrap_or_else(|_| HttpResponse::text(503, "no answer in time\n"));
            respond(
                &mut stream,
                &hs::http_response(r.status, &r.content_type, &r.body, &r.headers),
            )
            .await;
            return None;
        }
        Route::HttpWithBody(f) => {
            let limits = BodyLimits {
                max_body: server.max_request_body,
                max_trailers: server.limits.max_size,
            };
            let hub = &state.hub;
            body::serve(&mut stream, request, leftover, &f, hub, limits, deadline).await;
            return None;
        }
        Route::Socket(f) => f,
    };
    let hub = &state.hub;
    let (conn, protocol) = match upgrade(server, hub, &mut stream, &request).await {
        Ok(accepted) => accepted,
        Err(Some(error)) => {
            respond(&mut stream, &hs::reject_response(&error)).await;
            return None;
        }
        Err(None) => return None,
    };
    #[cfg(unix)]
    let low_water = crate::transport::low_water_for(&stream);
    let mut ws = WebSocket::from_parts(stream, conn, &leftover);
    #[cfg(unix)]
    ws.set_low_water(low_water);
    ws.set_protocol(protocol);
    let attached = hub.attach(&mut ws);
    Some(Upgraded {
        route,
        ws,
        request,
        hub: hub.clone(),
        attached,
    })
}

async fn secure(server: &Server, tcp: TcpStream) -> std::io::Result<MaybeTlsStream> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &server.tls {
        return Ok(MaybeTlsStream::ServerTls(Box::new(
            acceptor.accept(crate::ReadAhead::new(tcp)).await?,
        )));
    }
    let _ = server;
    Ok(MaybeTlsStream::Plain(tcp))
}

type ReadResult<S> = std::result::Result<Option<(S, Request, Bytes)>, (S, HandshakeError)>;

/// Reads the request head; returns it with the bytes read past it.
async fn read_request<S: AsyncRead + Unpin>(
    mut stream: S,
    limits: &HandshakeLimits,
) -> ReadResult<S> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match hs::parse_request(&buf, limits) {
            Ok(Some((request, used))) => {
                let leftover = buf.split_off(used).freeze();
                return Ok(Some((stream, request, leftover)));
            }
            Ok(None) => {}
            Err(error) => return Err((stream, error)),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Checks the origin, asks the hook, lets the engine accept (validation, subprotocol and
/// extension negotiation) and writes the 101 response. `Err(Some)` is
/// answered with its status; `Err(None)` means the socket failed.
async fn upgrade<S: AsyncWrite + Unpin>(
    server: &Server,
    hub: &Hub,
    stream: &mut S,
    request: &UpgradeRequest,
) -> std::result::Result<(Connection, Option<String>), Option<HandshakeError>> {
    // A request that is no valid upgrade is refused before the hook sees it.
    hs::validate_request(request.http()).map_err(Some)?;
    if let Some(allowed) = &server.allowed_origins {
        allowed.check(request.http().origin()).map_err(Some)?;
    }
    let decision = match &server.upgrade_hook {
        Some(hook) => hook(request),
        None => UpgradeDecision::accept(),
    };
    let choice = match decision {
        UpgradeDecision::Accept { protocol, headers } => Choice {
            protocol: protocol.or_else(|| {
                choose_protocol(&server.protocols, &request.protocols(), Preference::Server)
            }),
            headers,
        },
        // A refusal must not read as an upgrade (101 without an accept
        // key) or a success: that is the hook's mistake, answered with 500.
        UpgradeDecision::Reject { status, .. } if status < 300 => {
            return Err(Some(HandshakeError::new(
                500,
                format!("the upgrade hook refused with status {status}, which is no refusal"),
            )))
        }
        UpgradeDecision::Reject { status, reason } => {
            return Err(Some(HandshakeError::new(status, reason)))
        }
    };
    let accepted = hs::accept(request.http(), hub.config().clone(), choice).map_err(Some)?;
    stream
        .write_all(&accepted.response)
        .await
        .map_err(|_| None)?;
    Ok((accepted.connection, accepted.protocol))
}

/// Tells a client accepted with the spare descriptor that the server is
/// full: its request is read briefly (closing on unread data would reset
/// the connection before the answer is read), then 503 and close.
pub(crate) async fn refuse_full(mut tcp: TcpStream) {
    let mut request = [0u8; 2048];
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        tcp.read(&mut request),
    )
    .await;
    let error = HandshakeError::new(503, "out of file descriptors: too many connections");
    respond(&mut tcp, &hs::reject_response(&error)).await;
}
