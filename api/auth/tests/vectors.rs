//! The shared SRP-6a / 2SKD test vectors (testdata/srp_vectors.json, made by srptools 2.0.0
//! and plain Python) checked byte for byte against the Rust server, client and derivation.

#![allow(clippy::unwrap_used)] // test helpers: a broken vector file is a test failure

use drover_auth::derive::{self, SecretKey};
use drover_auth::hex;
use drover_auth::srp::{self, SrpClient};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/srp_vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

fn b(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(s(v, k)).unwrap()
}

#[test]
fn group_constants() {
    let v = vectors();
    assert_eq!(hex::encode(&srp::multiplier()), s(&v["group"], "k"));
    assert_eq!(s(&v["group"], "g"), "02");
    assert_eq!(s(&v["group"], "N").len(), 2 * srp::N_LEN);
    assert_eq!(
        s(&v, "secret_key_alphabet").as_bytes(),
        derive::ALPHABET.as_slice()
    );
}

#[test]
fn srp_server_and_client_match_srptools() {
    let v = vectors();
    let cases = v["srp"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let name = s(c, "name");
        let identity = s(c, "identity");
        let salt = b(c, "salt");
        let x = b(c, "x");
        let verifier = srp::verifier(&x);
        assert_eq!(hex::encode(&verifier), s(c, "v"), "{name}: v");

        let ch = srp::start_login_with_private(identity, &salt, &verifier, &b(c, "b")).unwrap();
        assert_eq!(hex::encode(&ch.b_pub), s(c, "B"), "{name}: B");

        let client = SrpClient::with_private(identity, &x, &b(c, "a"));
        assert_eq!(hex::encode(client.a_pub()), s(c, "A"), "{name}: A");
        let proof = client.respond(&salt, &ch.b_pub).unwrap();
        assert_eq!(hex::encode(&proof.m1), s(c, "M1"), "{name}: client M1");
        assert_eq!(
            hex::encode(proof.session_key.as_slice()),
            s(c, "K"),
            "{name}: K"
        );

        // the server, fed the vector's own A and M1 in wire form
        let server = ch.session.finish_hex(s(c, "A"), s(c, "M1")).unwrap();
        assert_eq!(hex::encode(&server.m2), s(c, "M2"), "{name}: M2");
        assert_eq!(
            hex::encode(server.session_key.as_slice()),
            s(c, "K"),
            "{name}: server K"
        );
        assert!(proof.verify_m2(&b(c, "M2")), "{name}: client accepts M2");
    }
}

#[test]
fn srptools_x_case_uses_rfc_formula() {
    // sanity: the srptools-x cases' x really is H(s | H(I ":" P)), so the vectors are what
    // srptools itself computes for a password login
    use sha2::{Digest, Sha256};
    let v = vectors();
    for c in v["srp"].as_array().unwrap() {
        if s(&c["x_source"], "kind") != "srptools" {
            continue;
        }
        let inner = Sha256::digest(
            format!("{}:{}", s(c, "identity"), s(&c["x_source"], "password")).as_bytes(),
        );
        let mut outer = Sha256::new();
        outer.update(b(c, "salt"));
        outer.update(inner);
        let x = num_bigint::BigUint::from_bytes_be(&outer.finalize()).to_bytes_be();
        assert_eq!(hex::encode(&x), s(c, "x"), "{}", s(c, "name"));
    }
}

#[test]
fn two_skd_vectors() {
    let v = vectors();
    let cases = v["two_skd"].as_array().unwrap();
    let mut real = 0;
    for c in cases {
        let name = s(c, "name");
        let iterations = u32::try_from(c["iterations"].as_u64().unwrap()).unwrap();
        if iterations == derive::PBKDF2_ITERATIONS {
            real += 1;
        }
        let key = SecretKey::parse(s(c, "secret_key")).unwrap();
        assert_eq!(
            hex::encode(key.as_bytes()),
            s(c, "secret_key_bytes"),
            "{name}"
        );
        let d = derive::derive(
            s(c, "password"),
            &key,
            s(c, "email"),
            &b(c, "salt"),
            iterations,
        );
        assert_eq!(
            hex::encode(&d.stretched_salt),
            s(c, "stretched_salt"),
            "{name}"
        );
        assert_eq!(hex::encode(d.p.as_slice()), s(c, "p"), "{name}");
        assert_eq!(hex::encode(d.skd.as_slice()), s(c, "skd"), "{name}");
        assert_eq!(
            hex::encode(d.stretched.as_slice()),
            s(c, "stretched"),
            "{name}"
        );
        assert_eq!(hex::encode(d.x.as_slice()), s(c, "x"), "{name}");
        assert_eq!(
            hex::encode(&srp::verifier(d.x.as_slice())),
            s(c, "v"),
            "{name}"
        );
    }
    assert_eq!(real, 1, "one vector uses the production iteration count");
}

#[test]
fn secret_key_text_vectors() {
    let v = vectors();
    for c in v["secret_keys"].as_array().unwrap() {
        let bytes: [u8; 16] = b(c, "bytes").try_into().unwrap();
        let key = SecretKey::from_bytes(bytes);
        assert_eq!(key.to_string(), s(c, "text"));
        assert_eq!(SecretKey::parse(s(c, "text")).unwrap(), key);
    }
}
