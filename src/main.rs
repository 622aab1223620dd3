use clap::Parser;

fn main() {
    let cli = sitrep::cli::Cli::parse();
    match sitrep::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
