//! `duplex connect --reconnect`: the connect contract on the reconnecting
//! client of the library.

use duplex::reconnect::{ClientEvent, ReconnectingClient};
use duplex::Message;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::output::print_message;

/// `--reconnect`: the same contract on top of the reconnecting client.
/// Lines wait for room in its queue (reading stdin pauses meanwhile), so
/// none is refused.
pub(super) async fn reconnecting(mut client: ReconnectingClient, echo: bool) -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = !echo;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if let Err(e) = client.send_when_room(Message::text(line)).await {
                        eprintln!("duplex: message not queued: {e}");
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    client.close();
                }
            },
            event = client.next_event() => match event {
                Some(ClientEvent::Message(message)) => {
                    if echo {
                        if let Err(e) = client.send(message) {
                            eprintln!("duplex: echo not queued: {e}");
                        }
                    } else {
                        print_message(&mut out, &message);
                    }
                }
                Some(ClientEvent::Connected { .. }) => eprintln!("duplex: connected"),
                Some(ClientEvent::Disconnected { code, error }) => match error {
                    Some(error) => eprintln!("duplex: disconnected ({code}): {error}"),
                    None => eprintln!("duplex: disconnected ({code})"),
                },
                Some(ClientEvent::ConnectFailed { error }) => eprintln!("duplex: connect failed: {error}"),
                Some(ClientEvent::Reconnecting { attempt, delay }) => {
                    eprintln!("duplex: reconnecting (attempt {attempt}) in {} ms", delay.as_millis());
                }
                Some(ClientEvent::Stopped { undelivered, gave_up }) => {
                    return match (undelivered.len(), gave_up) {
                        (0, false) => Ok(()),
                        (n, true) => Err(format!("gave up reconnecting; {n} message(s) not delivered")),
                        (n, false) => Err(format!("{n} message(s) not delivered")),
                    };
                }
                None => return Ok(()),
            },
        }
    }
}
