//! `duplex connect -v`: the handshake on stderr, the way `curl -v` shows
//! it: `> ` before each request line, `< ` before each response line, and
//! `* ` before what duplex did (a redirect followed).

use duplex::{ClientBuilder, HandshakeStep};

/// `builder`, printing its handshake steps on stderr.
pub(super) fn inspect(builder: ClientBuilder) -> ClientBuilder {
    builder.inspect_handshake(|step| match step {
        HandshakeStep::Request { url, head } => {
            eprintln!("* connecting to {url}");
            for line in head.lines().filter(|l| !l.is_empty()) {
                eprintln!("> {line}");
            }
        }
        HandshakeStep::Response {
            status,
            reason,
            headers,
        } => {
            eprintln!("< HTTP/1.1 {status} {reason}");
            for (name, value) in headers.iter() {
                eprintln!("< {name}: {value}");
            }
        }
        HandshakeStep::Redirect { status, to } => {
            eprintln!("* redirected ({status}) to {to}");
        }
        _ => {}
    })
}
