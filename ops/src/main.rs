//! `ttya-ops`: see `ttya-ops --help` and ops/src/lib.rs.

use clap::Parser;
use ttya_ops::{run, Cli, Ops};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let ops = match Ops::from_target(&cli.target).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ttya-ops: {e}");
            std::process::exit(2);
        }
    };
    match run(&ops, cli.command).await {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
        }
        Err(e) => {
            eprintln!("ttya-ops: {} {e}", e.code());
            std::process::exit(1);
        }
    }
}
