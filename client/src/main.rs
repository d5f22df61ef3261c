//! The `raida` command-line tool (in progress: see the library for now).
fn main() {
    eprintln!("raida: the command-line tool is not built yet; use the raida-client library");
    std::process::exit(2);
}
