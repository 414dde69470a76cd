//! [`Link`]: one connection to Redis, a single server or a cluster, with
//! the few commands the backplane sends.
//!
//! Both kinds speak RESP3, where subscription messages arrive as pushes
//! on the same multiplexed connection that answers commands: that is what
//! lets the subscriber probe its own connection with `PING` (a half-dead
//! connection after a failover is noticed by the probe, not by waiting for
//! a message that never comes), and what redis-rs needs for sharded
//! pub/sub on a cluster.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::warn_limit::RateLimited;
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo,
    RedisResult,
};

/// What receives the pushes (subscription messages, disconnections) of a
/// subscriber's connection. It runs on the connection's reader and must
/// not wait.
pub(super) type PushSink = Arc<dyn Fn(PushInfo) + Send + Sync>;

/// Where Redis is: parsed once, connected as often as needed.
#[derive(Clone, Debug)]
pub(super) enum Endpoint {
    /// One server (or a primary behind a failover proxy).
    Single(Client),
    /// A Redis Cluster, from any of its nodes; rooms use sharded pub/sub.
    Cluster {
        nodes: Vec<ConnectionInfo>,
        /// The CA (PEM) that `rediss://` certificates are checked against,
        /// instead of the system's roots.
        ca: Option<Vec<u8>>,
    },
}

/// One open connection.
#[derive(Clone)]
pub(super) enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// `info` with RESP3, whatever the URL said.
fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(redis)
}

impl Endpoint {
    /// Parses the URL(s): `redis://[:PASSWORD@]HOST[:PORT][/DB]` or
    /// `rediss://...` (TLS; needs the `tls` feature).
    /// `ca`: the PEM CA of `rediss://` servers, instead of the system's
    /// roots (with the `tls` feature).
    pub(super) fn parse(
        urls: &[String],
        cluster: bool,
        ca: Option<&[u8]>,
    ) -> RedisResult<Endpoint> {
        let infos = urls
            .iter()
            .map(|url| url.as_str().into_connection_info().map(resp3))
            .collect::<RedisResult<Vec<_>>>()?;
        match (cluster, infos.len()) {
            (_, 0) => Err((redis::ErrorKind::InvalidClientConfig, "no Redis URL given").into()),
            (false, 1) => {
                let info = infos.into_iter().next().expect("one");
                Ok(Endpoint::Single(single_client(info, ca)?))
            }
            (false, _) => Err((
                redis::ErrorKind::InvalidClientConfig,
                "several Redis URLs are a cluster's nodes: ask for cluster mode",
            )
                .into()),
            (true, _) => Ok(Endpoint::Cluster {
                nodes: infos,
                ca: ca.map(<[u8]>::to_vec),
            }),
        }
    }

    /// Whether rooms use sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Endpoint::Cluster { .. })
    }

    /// Opens a connection; `push` receives its subscription messages.
    pub(super) async fn connect(
        &self,
        timeout: Duration,
        push: Option<PushSink>,
    ) -> RedisResult<Link> {
        match self {
            Endpoint::Single(client) => {
                let mut config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                if let Some(push) = push {
                    config = config.set_push_sender(move |info: PushInfo| {
                        push(info);
                        Ok::<(), std::convert::Infallible>(())
                    });
                }
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Link::Single(connection))
            }
            Endpoint::Cluster { nodes, ca } => {
                let mut builder = ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1);
                builder = cluster_ca(builder, ca.as_deref());
                if let Some(push) = push {
                    builder = builder.push_sender(move |info: PushInfo| {
                        push(info);
                        Ok::<(), std::convert::Infallible>(())
                    });
                }
                let connection = builder.build()?.get_async_connection().await?;
                Ok(Link::Cluster(connection))
            }
        }
    }
}

/// A client for one server, checking `rediss://` against `ca` if given.
fn single_client(info: ConnectionInfo, ca: Option<&[u8]>) -> RedisResult<Client> {
    match ca {
        #[cfg(feature = "tls")]
        Some(ca) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        ),
        #[cfg(not(feature = "tls"))]
        Some(_) => Err((
            redis::ErrorKind::InvalidClientConfig,
            "a Redis CA needs the tls feature",
        )
            .into()),
        None => Client::open(info),
    }
}

#[cfg(feature = "tls")]
fn cluster_ca(builder: ClusterClientBuilder, ca: Option<&[u8]>) -> ClusterClientBuilder {
    match ca {
        Some(ca) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        }),
        None => builder,
    }
}

#[cfg(not(feature = "tls"))]
fn cluster_ca(builder: ClusterClientBuilder, _ca: Option<&[u8]>) -> ClusterClientBuilder {
    builder
}

/// Failed shard pipelines, logged at most once per interval.
static PUBLISH_FAILED: RateLimited = RateLimited::new();

/// The error of a command that got no answer in time.
fn not_in_time() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time").into()
}

/// One command of a publishing batch.
pub(super) enum Publish {
    /// `PUBLISH` (or `SPUBLISH`) the envelope on the room's channel.
    Message { channel: Arc<str>, envelope: Bytes },
    /// `XADD key MAXLEN ~ len * e envelope`: the room's history.
    History {
        key: Arc<str>,
        len: usize,
        envelope: Bytes,
    },
}

impl Publish {
    /// The key or channel that decides the cluster slot.
    fn slot_key(&self) -> &str {
        match self {
            Publish::Message { channel, .. } => channel,
            Publish::History { key, .. } => key,
        }
    }

    fn add_to(&self, pipe: &mut redis::Pipeline, sharded: bool) {
        match self {
            Publish::Message { channel, envelope } => {
                let verb = if sharded { "SPUBLISH" } else { "PUBLISH" };
                pipe.cmd(verb).arg(&**channel).arg(&envelope[..]).ignore();
            }
            Publish::History { key, len, envelope } => {
                pipe.cmd("XADD")
                    .arg(&**key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(*len)
                    .arg("*")
                    .arg("e")
                    .arg(&envelope[..])
                    .ignore();
            }
        }
    }
}

impl Link {
    /// Sends a batch in order, pipelined: one round trip on a single
    /// server; on a cluster one pipeline per room (a pipeline must stay in
    /// one slot), the rooms in parallel, each room's commands in order.
    /// Returns how many messages went out. On a cluster a shard that fails
    /// loses only its rooms' messages (they show as gaps at the
    /// receivers), and the call does not fail: redis-rs reconnects the
    /// shard, and giving up the whole connection would cost every shard.
    ///
    /// `timeout` bounds each pipeline: on a cluster, a shard that does not
    /// answer costs only its own rooms.
    pub(super) async fn publish(
        &mut self,
        batch: &[Publish],
        timeout: Duration,
    ) -> RedisResult<u64> {
        let messages = |commands: &[&Publish]| {
            commands
                .iter()
                .filter(|c| matches!(c, Publish::Message { .. }))
                .count() as u64
        };
        match self {
            Link::Single(connection) => {
                let mut pipe = redis::pipe();
                for command in batch {
                    command.add_to(&mut pipe, false);
                }
                match tokio::time::timeout(timeout, pipe.query_async::<()>(connection)).await {
                    Ok(result) => result?,
                    Err(_) => return Err(not_in_time()),
                }
                Ok(messages(&batch.iter().collect::<Vec<_>>()))
            }
            Link::Cluster(connection) => {
                let mut rooms: Vec<(&str, Vec<&Publish>)> = Vec::new();
                for command in batch {
                    let key = command.slot_key();
                    match rooms.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, commands)) => commands.push(command),
                        None => rooms.push((key, vec![command])),
                    }
                }
                let results = join_all(rooms.iter().map(|(_, commands)| {
                    let mut connection = connection.clone();
                    let mut pipe = redis::pipe();
                    for command in commands {
                        command.add_to(&mut pipe, true);
                    }
                    async move {
                        tokio::time::timeout(timeout, pipe.query_async::<()>(&mut connection))
                            .await
                            .unwrap_or_else(|_| Err(not_in_time()))
                    }
                }))
                .await;
                let mut sent = 0;
                for ((room, commands), result) in rooms.iter().zip(results) {
                    match result {
                        Ok(()) => sent += messages(commands),
                        Err(error) => PUBLISH_FAILED.warn(|suppressed| {
                            tracing::warn!(
                                channel = room,
                                "redis backplane: publishing on a shard failed ({error}); \
                                 its messages count as lost at the receivers \
                                 ({suppressed} more failures left out of the log)"
                            )
                        }),
                    }
                }
                Ok(sent)
            }
        }
    }

    /// Starts receiving these channels.
    pub(super) async fn subscribe(&mut self, channels: &[&str]) -> RedisResult<()> {
        match self {
            Link::Single(connection) => connection.subscribe(channels).await,
            Link::Cluster(connection) => connection.ssubscribe(channels).await,
        }
    }

    /// Stops receiving these channels.
    pub(super) async fn unsubscribe(&mut self, channels: &[&str]) -> RedisResult<()> {
        match self {
            Link::Single(connection) => connection.unsubscribe(channels).await,
            Link::Cluster(connection) => connection.sunsubscribe(channels).await,
        }
    }

    /// Any one command (on a cluster, routed by its key).
    pub(super) async fn query<T: redis::FromRedisValue>(
        &mut self,
        command: &redis::Cmd,
    ) -> RedisResult<T> {
        match self {
            Link::Single(connection) => command.query_async(connection).await,
            Link::Cluster(connection) => command.query_async(connection).await,
        }
    }

    /// A pipeline whose answers are not needed (on a cluster its keys
    /// must share one slot).
    pub(super) async fn query_pipe(&mut self, pipe: &redis::Pipeline) -> RedisResult<()> {
        match self {
            Link::Single(connection) => pipe.query_async::<()>(connection).await,
            Link::Cluster(connection) => pipe.query_async::<()>(connection).await,
        }
    }

    /// Any command answered: the connection is alive.
    pub(super) async fn ping(&mut self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match self {
            Link::Single(connection) => ping.query_async::<redis::Value>(connection).await,
            Link::Cluster(connection) => ping.query_async::<redis::Value>(connection).await,
        }
        .map(|_| ())
    }

    /// [`Link::ping`] answered within `limit`: the liveness probe of the
    /// publisher, the subscriber and the presence task.
    pub(super) async fn probe(&mut self, limit: Duration) -> Result<(), String> {
        answered(limit, "probe", self.ping()).await
    }
}

/// Runs one command on the connection, at most `limit`: its reply, or
/// "`what` failed: ..." / "`what` not answered in time".
pub(super) async fn answered<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    command: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, command).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(format!("{what} failed: {error}")),
        Err(_) => Err(format!("{what} not answered in time")),
    }
}
