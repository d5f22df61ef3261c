//! `raida-server`: flags and `config.toml` to a configuration, then
//! `raida_io_epoll::ServerBuilder` (see the crate's documentation and README.md).

fn main() -> std::process::ExitCode {
    raida_io_epoll::main()
}
