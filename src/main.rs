//! The `mm-edge` binary: parse the command line and hand over to [`mm_edge::app`].

fn main() -> std::process::ExitCode {
    match mm_edge::config::cli::parse_from(std::env::args_os()) {
        Ok(cli) => mm_edge::app::main(cli),
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}
