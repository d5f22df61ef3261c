//! `raida-server`: see `raida_io_epoll::server` and io-epoll/README.md.

fn main() -> std::process::ExitCode {
    raida_io_epoll::server::main()
}
