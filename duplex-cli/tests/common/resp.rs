//! A tiny blocking RESP2 client: enough to PING a test server, form a
//! cluster and inject faults (`CLIENT KILL`, `CLIENT PAUSE`, `DEBUG
//! SLEEP`) or look at subscriptions (`PUBSUB NUMSUB`), without depending
//! on `redis-cli` being installed.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`, ...
    Simple(String),
    /// `-ERR ...`: the command failed (the connection is still usable).
    Error(String),
    /// `:N`
    Int(i64),
    /// `$N` followed by N bytes; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*N` followed by N replies; `None` for the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: a simple string, a bulk string, or an error's
    /// message; panics on anything else (a test's expectation failed).
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    /// The reply as an integer; panics otherwise.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// The elements of an array reply; panics otherwise.
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    /// Panics unless the reply is `+OK`.
    pub fn expect_ok(&self, what: &str) {
        assert_eq!(self, &Reply::Simple("OK".into()), "{what}");
    }

    /// Whether the reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// One connection to a Redis server.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// How long a single reply may take (a `DEBUG SLEEP` caller sets its own).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Resp {
    /// Connects to `addr` (`HOST:PORT`).
    pub fn connect(addr: &str) -> io::Result<Resp> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Resp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Changes how long a reply may take.
    pub fn set_reply_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }

    /// Sends one command and reads its reply.
    pub fn command(&mut self, args: &[&str]) -> io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command (as an array of bulk strings) without reading.
    pub fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.writer.write_all(&encode(args))
    }

    /// Reads one reply (also a pushed message, for a subscribed connection).
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }
}

/// The RESP encoding of a command.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one line without its CR LF; EOF is an error.
fn line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut raw = Vec::new();
    if reader.read_until(b'\n', &mut raw)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if !raw.ends_with(b"\r\n") {
        return Err(bad(format!("a RESP line without CR LF: {raw:?}")));
    }
    raw.truncate(raw.len() - 2);
    String::from_utf8(raw).map_err(|e| bad(format!("a RESP line that is not UTF-8: {e}")))
}

fn number(text: &str) -> io::Result<i64> {
    text.parse().map_err(|_| {
        bad(format!(
            "a RESP length or integer that is not a number: {text:?}"
        ))
    })
}

/// Reads one reply from `reader`.
pub fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let head = line(reader)?;
    let (kind, rest) = head.split_at(head.len().min(1));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number(rest)?),
        "$" => {
            let len = number(rest)?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut data = vec![0; len as usize + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
        }
        "*" => {
            let len = number(rest)?;
            if len < 0 {
                Reply::Array(None)
            } else {
                let items = (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<io::Result<_>>()?;
                Reply::Array(Some(items))
            }
        }
        _ => return Err(bad(format!("an unknown RESP reply: {head:?}"))),
    })
}

/// One command on a fresh connection to `addr`; panics when the server
/// cannot be reached (a test helper: the server is expected to be up).
pub fn command(addr: &str, args: &[&str]) -> Reply {
    let mut conn =
        Resp::connect(addr).unwrap_or_else(|e| panic!("connect to redis at {addr}: {e}"));
    conn.command(args)
        .unwrap_or_else(|e| panic!("redis at {addr}: {args:?}: {e}"))
}

/// The value of `field` in an `INFO`-style reply (`field:value` lines).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (name, value) = line.trim_end().split_once(':')?;
        (name == field).then(|| value.to_string())
    })
}

/// How many subscribers `channel` has on the server at `addr`, counting
/// both plain (`PUBSUB NUMSUB`) and sharded (`PUBSUB SHARDNUMSUB`)
/// subscriptions, so the tests do not depend on which the backplane uses.
pub fn subscribers(addr: &str, channel: &str) -> i64 {
    let count = |sub: &str| -> i64 {
        let reply = command(addr, &["PUBSUB", sub, channel]);
        let items = reply.items();
        assert_eq!(items.len(), 2, "PUBSUB {sub} {channel}: {reply:?}");
        items[1].int()
    };
    count("NUMSUB") + count("SHARDNUMSUB")
}

/// How often a command was called on the server at `addr` since it
/// started (`INFO commandstats`; 0 when never).
pub fn command_calls(addr: &str, command_name: &str) -> u64 {
    let info = command(addr, &["INFO", "commandstats"]).text();
    let Some(stats) = info_field(&info, &format!("cmdstat_{command_name}")) else {
        return 0;
    };
    stats
        .split(',')
        .find_map(|kv| kv.strip_prefix("calls="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cmdstat_{command_name}: {stats:?}"))
}

/// Waits until `channel` has `want` subscribers on the server at `addr`
/// (see [`subscribers`]), at most `limit`; returns how long it took, or
/// panics with the last count.
pub fn wait_subscribers(
    addr: &str,
    channel: &str,
    want: i64,
    limit: std::time::Duration,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        let got = subscribers(addr, channel);
        if got == want {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("{channel}: {got} subscribers, not {want}, after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
