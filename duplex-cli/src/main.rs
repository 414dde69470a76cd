//! `duplex`: serve, connect to and benchmark WebSockets.
//!
//! This crate only parses arguments, wires the library together and
//! prints; the protocol lives in `duplex-proto` and the I/O in `duplex`.

mod bench;
mod connect;
mod listen;
mod memory_release;
mod page;
mod proxy_args;
mod publish;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: measured against the system allocator on the idle-connection
/// and echo benchmarks (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A WebSocket toolkit: serve, connect, benchmark.
#[derive(Parser)]
#[command(name = "duplex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the chat page, `/echo`, `/chat/<room>` and `/healthz`.
    Serve(serve::ServeArgs),
    /// Connect to a WebSocket URL: send stdin lines, print what arrives.
    Connect(connect::ConnectArgs),
    /// Accept WebSocket clients: print what they send, send them stdin
    /// lines (like `websocat -s`).
    Listen(listen::ListenArgs),
    /// Load an echo endpoint, or with --fanout chat rooms, and report
    /// rates, latency percentiles and (fan-out) every lost or misordered delivery.
    #[command(after_help = bench::FANOUT_HELP)]
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DUPLEX_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let threads = match &cli.command {
        Command::Serve(args) => args.threads(),
        Command::Bench(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Command::Connect(_) | Command::Listen(_) => 1,
    };
    // One thread: a current-thread runtime, without the work-stealing
    // machinery a single core cannot use (measured: see the README).
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(memory_release::collect_if_asked)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .on_thread_park(memory_release::collect_if_asked)
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("duplex: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Listen(args) => listen::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    let code = match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("duplex: {message}");
            1
        }
    };
    // Reading stdin parks a blocking thread that would delay the runtime's
    // shutdown until the next line; the work is done, so leave now.
    std::process::exit(code);
}
