//! raida-tests: end-to-end tests that start the real `raida-server` binary on
//! `--port 0` and talk to it over loopback with the client library.
