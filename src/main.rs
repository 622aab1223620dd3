fn main() {
    let code = match sitrep::cli::parse().and_then(sitrep::cli::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
