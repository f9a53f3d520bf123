//! `HttpConfig`: where the API listens and how it treats requests (CORS, proxies, limits,
//! cookies, the token key, the web UI folder). Flattened into `drover run`'s flags; every flag
//! also reads a `DROVER_*` variable (and the seed's names where the issue lists them).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// HTTP API settings.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Address the API (and the web UI) listens on.
    #[arg(
        long = "http-addr",
        env = "DROVER_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Browser origins allowed to call the API cross-origin, comma-separated (empty: same
    /// origin only).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is trusted for the client address, comma-separated.
    #[arg(
        long,
        env = "DROVER_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "DROVER_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,
    /// Per-request timeout in seconds (SSE streams excepted).
    #[arg(long, env = "DROVER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// The API is reached over TLS (directly or behind a TLS proxy): cookies get `Secure` and
    /// responses carry HSTS.
    #[arg(long, env = "DROVER_PUBLIC_TLS", default_value_t = false)]
    pub public_tls: bool,
    /// Token signing key: 32 bytes as 64 hex characters. Required in production; in development
    /// a random key is made at start (tokens then die with the process).
    #[arg(long, env = "DROVER_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,
    /// Folder with the built web UI (`web/dist`); not served when missing.
    #[arg(long, env = "DROVER_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,
    /// Auth endpoints: attempts per minute per client address and per account.
    #[arg(long, env = "DROVER_AUTH_RATE_PER_MINUTE", default_value_t = 5)]
    pub auth_rate_per_minute: u32,
    /// Prefix of every Redis key this node writes.
    #[arg(long, env = "DROVER_REDIS_PREFIX", default_value = "drover:")]
    pub redis_prefix: String,
    /// Most SSE clients one node serves at once.
    #[arg(long, env = "DROVER_SSE_MAX_CLIENTS", default_value_t = 20_000)]
    pub sse_max_clients: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 1_048_576,
            request_timeout_secs: 30,
            public_tls: false,
            token_key: None,
            web_dir: PathBuf::from("web/dist"),
            auth_rate_per_minute: 5,
            redis_prefix: "drover:".into(),
            sse_max_clients: 20_000,
        }
    }
}

impl HttpConfig {
    /// Checks every value once at start; the message names the flag.
    pub fn validate(&self, production: bool) -> Result<(), String> {
        for o in self.cors_origins.iter().filter(|o| !o.is_empty()) {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(format!(
                    "--cors-origins: {o:?} is not an origin like https://ops.example.com"
                ));
            }
        }
        self.trusted_proxy_addrs()?;
        if !(1024..=64 * 1_048_576).contains(&self.max_body_bytes) {
            return Err("--max-body-bytes must be between 1024 and 67108864".into());
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err("--request-timeout-secs must be between 1 and 600".into());
        }
        if !(1..=10_000).contains(&self.auth_rate_per_minute) {
            return Err("--auth-rate-per-minute must be between 1 and 10000".into());
        }
        match &self.token_key {
            Some(k) if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) => {
                return Err("DROVER_TOKEN_KEY must be 64 hex characters (32 bytes)".into());
            }
            None if production => {
                return Err("DROVER_TOKEN_KEY is required when DROVER_ENV=production".into());
            }
            _ => {}
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.len() > 64 {
            return Err("--redis-prefix must be 1..64 characters".into());
        }
        Ok(())
    }

    pub fn trusted_proxy_addrs(&self) -> Result<Vec<IpAddr>, String> {
        self.trusted_proxies
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("--trusted-proxies: {p:?} is not an IP address"))
            })
            .collect()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_flag() {
        let mut c = HttpConfig {
            cors_origins: vec!["ops.example.com".into()],
            ..HttpConfig::default()
        };
        assert!(c.validate(false).unwrap_err().contains("--cors-origins"));
        c.cors_origins = vec!["https://ops.example.com".into()];
        assert!(c.validate(false).is_ok());
        assert!(c.validate(true).unwrap_err().contains("DROVER_TOKEN_KEY"));
        c.token_key = Some("zz".into());
        assert!(c.validate(false).unwrap_err().contains("64 hex"));
        c.token_key = None;
        c.trusted_proxies = vec!["not-an-ip".into()];
        assert!(c.validate(false).unwrap_err().contains("--trusted-proxies"));
    }
}
