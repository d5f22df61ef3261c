//! One request, one reply, printed as text or JSON: what every subcommand that asks a
//! RAIDA one thing (echo, version) does.

use std::time::Duration;

use serde_json::{json, Value};

use raida_client::{exchange, Timeouts};

use crate::exit::{usage_error, Exit};
use crate::output::{hex, insert_reply, out, print_reply};
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
                let ascii = (!body.is_empty()
                    && body.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
                .then(|| String::from_utf8_lossy(body).into_owned());
                if t.json {
                    let mut o = t.json_head(name);
                    insert_reply(&mut o, &reply);
                    o.insert("body_hex".into(), json!(hex(body)));
                    if let (Some(key), Some(v), true) = (self.body_name, &ascii, h.is_success()) {
                        o.insert(key.into(), json!(v.trim_end()));
                    }
                    out!("{}", Value::Object(o));
                } else {
                    print_reply(&reply, transport, addr);
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
                    let mut o = t.json_head(name);
                    o.insert("error".into(), json!(e.to_string()));
                    o.insert("error_kind".into(), json!(e.kind().name()));
                    out!("{}", Value::Object(o));
                } else {
                    eprintln!("raida {name}: {e}");
                }
                Exit::of_error(&e)
            }
        }
    }
}
