//! `raida-server`: flags and `config.toml` to a configuration, then
//! `raida_server::ServerBuilder` (see the crate's documentation and README.md).

fn main() -> std::process::ExitCode {
    raida_server::main()
}
