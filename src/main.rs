//! The `darkpool` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code (0 ok, 1 error, 2 refused or bad usage; a closed stdout pipe is not an error).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use darkpool::cli::{self, Cli, Exit};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = cli::refuse_ignored_flags(&matches) {
        darkpool::say!("error: {e}");
        return ExitCode::from(1);
    }
    // `.ci/compose-check`: the command line parses and no flag is refused; nothing runs.
    if std::env::var_os("DARKPOOL_CHECK_FLAGS_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DARKPOOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            darkpool::say!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.code);
            // Each cause once: most of our errors already quote their source in their text.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            darkpool::say!("error: {message}");
            ExitCode::from(code as u8)
        }
    }
}
