//! A drover SRP-6a server speaking line-delimited JSON on stdin/stdout, for the Python
//! interop test (tests/interop/test_srp_login.py) until the HTTP API exists.
//!
//! Requests, one JSON object per line:
//! - `{"op":"init","identity":"a@b.c","salt":"<hex>","verifier":"<hex>"}`
//!   → `{"ok":true,"session":"<id>","B":"<hex>"}`
//! - `{"op":"verify","session":"<id>","A":"<hex>","M1":"<hex>"}`
//!   → `{"ok":true,"M2":"<hex>"}` or `{"ok":false,"error":"..."}`
//! - `{"op":"fake","email":"a@b.c"}` → `{"ok":true,"salt":"<hex>","B":"<hex>"}`
//!
//! Sessions are kept as the JSON that would go to Redis and are taken once, like
//! `state::LoginSessions`.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use drover_auth::hex;
use drover_auth::srp::{self, PendingLogin};
use serde_json::{Value, json};

fn field<'a>(req: &'a Value, name: &str) -> Result<&'a str, String> {
    req.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing field {name}"))
}

fn handle(req: &Value, sessions: &mut HashMap<String, String>) -> Result<Value, String> {
    match field(req, "op")? {
        "init" => {
            let salt = hex::decode(field(req, "salt")?).map_err(|e| e.to_string())?;
            let verifier = hex::decode(field(req, "verifier")?).map_err(|e| e.to_string())?;
            let ch = srp::start_login(field(req, "identity")?, &salt, &verifier)
                .map_err(|e| e.to_string())?;
            let id = drover_auth::state::random_id().map_err(|e| e.to_string())?;
            let stored = serde_json::to_string(&ch.session).map_err(|e| e.to_string())?;
            sessions.insert(id.clone(), stored);
            Ok(json!({"ok": true, "session": id, "B": hex::encode(&ch.b_pub)}))
        }
        "verify" => {
            let stored = sessions
                .remove(field(req, "session")?)
                .ok_or("unknown or used session")?;
            let pending: PendingLogin = serde_json::from_str(&stored).map_err(|e| e.to_string())?;
            let proof = pending
                .finish_hex(field(req, "A")?, field(req, "M1")?)
                .map_err(|e| e.to_string())?;
            Ok(json!({"ok": true, "M2": hex::encode(&proof.m2)}))
        }
        "fake" => {
            let (salt, b) = srp::fake_challenge(b"interop-test-secret", field(req, "email")?);
            Ok(json!({"ok": true, "salt": hex::encode(&salt), "B": hex::encode(&b)}))
        }
        other => Err(format!("unknown op {other}")),
    }
}

fn main() -> std::io::Result<()> {
    let mut sessions = HashMap::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => {
                handle(&req, &mut sessions).unwrap_or_else(|e| json!({"ok": false, "error": e}))
            }
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}
