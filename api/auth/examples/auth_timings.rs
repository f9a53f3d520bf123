//! Prints how long drover-auth's expensive steps take on this machine (SRP server and client,
//! the 2SKD derivation at the production PBKDF2 count, argon2id, token mint and verify).
//! Run with `cargo run --release -p drover-auth --example auth_timings`.

use std::time::{Duration, Instant};

use chrono::Utc;
use drover_auth::derive::{self, SecretKey};
use drover_auth::srp::{self, SrpClient};
use drover_auth::tokens::{ACCESS_TTL, Claims, Role, TokenKeys, TokenKind};
use uuid::Uuid;

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    let per = start.elapsed() / runs;
    println!("{label:<44} {per:>12.3?}  (mean of {runs})");
    per
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = SecretKey::generate()?;
    let salt = srp::random_salt()?;
    time("2SKD srp_x, PBKDF2 650000", 2, || {
        derive::srp_x("correct horse battery staple", &key, "a@example.com", &salt)
    });
    let x = derive::srp_x_with_iterations("pw", &key, "a@example.com", &salt, 1);
    let v = srp::verifier(x.as_slice());
    time("srp::verifier (g^x)", 20, || srp::verifier(x.as_slice()));
    time("srp::start_login (b, B)", 50, || {
        srp::start_login("a@example.com", &salt, &v)
    });
    let client = SrpClient::new("a@example.com", x.as_slice())?;
    let ch = srp::start_login("a@example.com", &salt, &v)?;
    time("SrpClient::respond (S, M1)", 20, || {
        client.respond(&salt, &ch.b_pub)
    });
    let proof = client.respond(&salt, &ch.b_pub)?;
    time("PendingLogin::finish (S, M1 check, M2)", 50, || {
        ch.session.finish(client.a_pub(), &proof.m1)
    });
    let phc = drover_auth::password::hash("pw")?;
    time("password::hash (argon2id m=19MiB t=2)", 3, || {
        drover_auth::password::hash("pw")
    });
    time("password::verify", 3, || {
        drover_auth::password::verify("pw", &phc)
    });
    let keys = TokenKeys::from_secret(&[9; 32])?;
    let claims = Claims::new(
        Uuid::new_v4(),
        Some(Uuid::new_v4()),
        Role::Operator,
        TokenKind::Access,
        Utc::now(),
        ACCESS_TTL,
    );
    let token = keys.mint(&claims)?;
    println!("access token length: {} characters", token.len());
    time("TokenKeys::mint", 200, || keys.mint(&claims));
    time("TokenKeys::verify", 200, || keys.verify(&token, Utc::now()));
    Ok(())
}
