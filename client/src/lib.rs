//! raida-client: builds requests of every encryption type from named fields, sends
//! them over TCP or UDP, verifies and decrypts the response; and the `raida` CLI
//! (echo, version, bench).
