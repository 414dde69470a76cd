//! `duplex connect --reconnect`: the connect contract on the reconnecting
//! client of the library.

use duplex::reconnect::{ClientEvent, ReconnectingClient};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::formats::InputArgs;
use super::output::Printer;

/// `--reconnect`: the same contract on top of the reconnecting client.
/// Lines wait for room in its queue (reading stdin pauses meanwhile), so
/// none is refused. A permanent error (see `Error::is_permanent`) ends it
/// at once; so does never connecting at all, with a failure either way.
/// Slash commands are not read here: lines are messages.
pub(super) async fn reconnecting(
    mut client: ReconnectingClient,
    url: &str,
    echo: bool,
    input: InputArgs,
    printer: Printer,
) -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = !echo;
    let mut connected = false;
    let mut permanent: Option<String> = None;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let message = match input.message(line) {
                        Ok(message) => message,
                        Err(why) => {
                            eprintln!("duplex: line not sent: {why}");
                            continue;
                        }
                    };
                    if let Err(e) = client.send_when_room(message).await {
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
                    if echo && message.is_data() {
                        if let Err(e) = client.send(message) {
                            eprintln!("duplex: echo not queued: {e}");
                        }
                    } else {
                        printer.print(&message, None);
                    }
                }
                Some(ClientEvent::Connected { .. }) => {
                    connected = true;
                    eprintln!("duplex: connected");
                }
                Some(ClientEvent::Disconnected { code, error }) => match error {
                    Some(error) => eprintln!("duplex: disconnected ({code}): {error}"),
                    None => eprintln!("duplex: disconnected ({code})"),
                },
                Some(ClientEvent::ConnectFailed { error, permanent: true }) => permanent = Some(error),
                Some(ClientEvent::ConnectFailed { error, .. }) => eprintln!("duplex: connect failed: {error}"),
                Some(ClientEvent::Reconnecting { attempt, delay }) => {
                    eprintln!("duplex: reconnecting (attempt {attempt}) in {} ms", delay.as_millis());
                }
                Some(ClientEvent::Stopped { undelivered, gave_up }) => {
                    if let Some(error) = permanent {
                        return Err(format!("{url}: {error} (a permanent error: not retrying)"));
                    }
                    if !connected {
                        return Err(format!("{url}: never connected; {} message(s) not delivered", undelivered.len()));
                    }
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
