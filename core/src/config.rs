//! Configuration (PROTOCOL.md section 10a). Filled by the config work.
