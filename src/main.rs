/// mimalloc: the server allocates many small, short-lived buffers per request
/// and per event, where glibc's malloc showed as a quarter of the writer's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
