//! `sandbox [--host 127.0.0.1] [--port 8787] [--public-url URL] [--no-seed]`: serves the provider
//! sandbox until Ctrl-C.

use std::net::IpAddr;

use sandbox::{spawn, SandboxConfig};

fn usage() -> ! {
    eprintln!("usage: sandbox [--host <ip>] [--port <port>] [--public-url <url>] [--no-seed]");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut cfg = SandboxConfig { port: 8787, ..SandboxConfig::default() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--host" => cfg.host = args.next().and_then(|h| h.parse::<IpAddr>().ok()).unwrap_or_else(|| usage()),
            "--port" => cfg.port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--public-url" => cfg.public_url = Some(args.next().unwrap_or_else(|| usage())),
            "--no-seed" => cfg.seed = false,
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let sb = match spawn(cfg).await {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("sandbox: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("sandbox listening on {}", sb.base_url);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { let _ = &sb; std::future::pending::<()>().await } => {}
    }
    sb.shutdown().await;
}
