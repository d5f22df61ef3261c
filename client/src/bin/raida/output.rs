//! How `raida` writes its results.

/// `println!` that ignores a closed stdout (e.g. `raida bench | head`) instead of
/// panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub(crate) use out;

/// Lowercase hex, as ANs and bodies are printed.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
