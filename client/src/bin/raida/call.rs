//! One request, one reply, printed as text or JSON: what every subcommand that asks a
//! RAIDA one thing (echo, version) does.

use std::time::Duration;

use serde_json::{json, Map, Value};

use raida_client::{exchange, status_name, Timeouts};

use crate::exit::{usage_error, Exit};
use crate::output::{hex, out};
use crate::target::TargetArgs;

/// What a one-request subcommand sends, and how its reply is shown.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    /// The subcommand, as messages and the JSON `command` name it.
    pub name: &'static str,
    /// Request byte 4.
    pub group: u8,
    /// Request byte 5.
    pub command: u8,
    /// A printable body is shown under this name instead of as `body` (text), and on
    /// SUCCESS also as this JSON key, trailing spaces trimmed: `version`.
    pub body_name: Option<&'static str>,
}

impl Call {
    /// Sends the request to `target` and prints the reply (or what went wrong).
    pub(crate) fn run(&self, target: &TargetArgs) -> Exit {
        let t = target;
        let name = self.name;
        let addr = t.addr();
        let transport = t.transport();
        let timeouts = Timeouts::uniform(Duration::from_millis(t.timeout_ms.unwrap_or(2000)));
        let built = match t.request(self.group, self.command).build() {
            Ok(b) => b,
            Err(e) => usage_error(e.to_string()),
        };
        match exchange(addr, transport, &built, &timeouts) {
            Ok(reply) => {
                let h = reply.response.header;
                let body = &reply.response.body;
                let rtt_us = u64::try_from(reply.round_trip.as_micros()).unwrap_or(u64::MAX);
                let ascii = (!body.is_empty()
                    && body.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
                .then(|| String::from_utf8_lossy(body).into_owned());
                if t.json {
                    let mut o = Map::new();
                    o.insert("command".into(), json!(name));
                    o.insert("addr".into(), json!(addr.to_string()));
                    o.insert("transport".into(), json!(transport.name()));
                    o.insert("enc".into(), json!(t.enc()));
                    o.insert("status".into(), json!(h.status.0));
                    o.insert("status_name".into(), json!(status_name(h.status)));
                    o.insert("round_trip_us".into(), json!(rtt_us));
                    o.insert("server_us".into(), json!(h.server_micros));
                    o.insert("body_hex".into(), json!(hex(body)));
                    if let (Some(key), Some(v), true) = (self.body_name, &ascii, h.is_success()) {
                        o.insert(key.into(), json!(v.trim_end()));
                    }
                    out!("{}", Value::Object(o));
                } else {
                    out!("status:     {} ({})", status_name(h.status), h.status.0);
                    out!(
                        "round trip: {:.3} ms over {} to {addr} (server: {} us)",
                        rtt_us as f64 / 1000.0,
                        transport.name(),
                        h.server_micros
                    );
                    match (&ascii, body.is_empty(), self.body_name) {
                        (_, true, _) => out!("body:       (none)"),
                        (Some(v), false, Some(key)) => {
                            out!("{:<12}{}", format!("{key}:"), v.trim_end())
                        }
                        (Some(v), false, None) => out!("body:       {v:?}"),
                        (None, false, _) => out!("body:       {} (hex)", hex(body)),
                    }
                }
                if h.is_success() {
                    Exit::Success
                } else {
                    Exit::OtherStatus
                }
            }
            Err(e) => {
                if t.json {
                    out!(
                        "{}",
                        json!({
                            "command": name,
                            "addr": addr.to_string(),
                            "transport": transport.name(),
                            "enc": t.enc(),
                            "error": e.to_string(),
                            "error_kind": e.kind().name(),
                        })
                    );
                } else {
                    eprintln!("raida {name}: {e}");
                }
                Exit::of_error(&e)
            }
        }
    }
}
