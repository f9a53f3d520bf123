//! The optional TOML configuration file of `drover run`: its keys are the long flag names
//! (`http_addr` or `http-addr`). A file setting becomes a command-line flag unless that flag
//! is given or its environment variable is set — so a setting comes from its default, then the
//! file, then the environment, then the command line, and clap validates them all in one place.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::config::ConfigError;

/// The file named by `--config PATH` (or `--config=PATH`) or `DROVER_CONFIG`, if any.
pub(crate) fn path_from(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("DROVER_CONFIG").map(PathBuf::from)
}

/// The command-line arguments without `--config PATH`.
pub(crate) fn strip(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--config" {
            skip = true;
            continue;
        }
        if a.starts_with("--config=") {
            continue;
        }
        out.push(a);
    }
    out
}

/// One `drover run` setting: its long flag, environment variable, and whether it is a switch.
#[derive(Debug, Clone)]
struct Setting {
    long: String,
    env: Option<String>,
    switch: bool,
}

fn run_settings() -> Vec<Setting> {
    let cmd = crate::Cli::command();
    let Some(run) = cmd.get_subcommands().find(|c| c.get_name() == "run") else {
        return Vec::new();
    };
    run.get_arguments()
        .filter_map(|a| {
            Some(Setting {
                long: a.get_long()?.to_owned(),
                env: a.get_env().and_then(|e| e.to_str()).map(str::to_owned),
                switch: matches!(a.get_action(), clap::ArgAction::SetTrue),
            })
        })
        .collect()
}

fn value_text(key: &str, v: &toml::Value) -> Result<String, ConfigError> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| value_text(key, i))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => {
            return Err(ConfigError(format!(
                "config file: {key} must be a string, number, boolean or list"
            )));
        }
    })
}

/// The flags the file adds to `args` (the arguments after `run`): a setting is skipped when
/// its flag is on the command line or its environment variable is set.
pub(crate) fn flags(
    text: &str,
    origin: &Path,
    args: &[String],
    env_set: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError(format!("{}: not valid TOML: {e}", origin.display())))?;
    let settings = run_settings();
    let mut out = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let Some(setting) = settings.iter().find(|s| s.long == flag) else {
            return Err(ConfigError(format!(
                "{}: unknown setting {key:?} (keys are `drover run` flag names, e.g. http_addr)",
                origin.display()
            )));
        };
        let given = args
            .iter()
            .any(|a| *a == format!("--{flag}") || a.starts_with(&format!("--{flag}=")));
        if given || setting.env.as_deref().is_some_and(&env_set) {
            continue;
        }
        let text = value_text(key, value)?;
        if setting.switch {
            match text.as_str() {
                "true" => out.push(format!("--{flag}")),
                "false" => {}
                _ => {
                    return Err(ConfigError(format!(
                        "{}: {key} must be true or false",
                        origin.display()
                    )));
                }
            }
        } else {
            out.push(format!("--{flag}={text}"));
        }
    }
    Ok(out)
}

/// `std::env::args()` with `--config PATH` removed and the file's settings added after `run`.
pub(crate) fn apply(args: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let Some(path) = path_from(&args) else {
        return Ok(args);
    };
    let mut args = strip(args);
    let Some(run_at) = args.iter().position(|a| a == "run") else {
        return Err(ConfigError(
            "--config (DROVER_CONFIG) applies to `drover run` only".into(),
        ));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    let extra = flags(&text, &path, &args[run_at + 1..], |var| {
        std::env::var_os(var).is_some()
    })?;
    args.splice(run_at + 1..run_at + 1, extra);
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(text: &str, args: &[&str], env: &[&str]) -> Result<Vec<String>, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags(text, Path::new("drover.toml"), &args, |v| env.contains(&v))
    }

    #[test]
    fn file_settings_become_flags_below_env_and_command_line() {
        let text = "http_addr = \"0.0.0.0:8080\"\nmax-handshakes = 32\ncors_origins = [\"https://a.example\", \"https://b.example\"]\npublic_tls = true\nnats_url = \"nats://10.0.0.1:4222\"\n";
        let f = parse(text, &["--max-handshakes", "8"], &["NATS_URL"]).unwrap();
        assert!(f.contains(&"--http-addr=0.0.0.0:8080".to_owned()), "{f:?}");
        assert!(f.contains(&"--cors-origins=https://a.example,https://b.example".to_owned()));
        assert!(f.contains(&"--public-tls".to_owned()));
        // The command line and the environment win over the file.
        assert!(
            !f.iter().any(|a| a.starts_with("--max-handshakes")),
            "{f:?}"
        );
        assert!(!f.iter().any(|a| a.starts_with("--nats-url")), "{f:?}");
    }

    #[test]
    fn a_file_run_parses_like_flags() {
        let mut args: Vec<String> = vec!["drover".into(), "run".into()];
        args.extend(parse("http_addr = \"127.0.0.1:9999\"", &[], &[]).unwrap());
        let cli = crate::Cli::try_parse_from(args).unwrap();
        let crate::Command::Run(cfg) = cli.command else {
            panic!("not run")
        };
        assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:9999");
    }

    #[test]
    fn the_example_file_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/drover.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut args: Vec<String> = vec!["drover".into(), "run".into()];
        args.extend(flags(&text, &path, &[], |_| false).unwrap());
        crate::Cli::try_parse_from(args).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_refused_with_the_file_name() {
        let e = parse("htp_addr = \"x\"", &[], &[]).unwrap_err();
        assert!(
            e.0.contains("drover.toml") && e.0.contains("htp_addr"),
            "{}",
            e.0
        );
        let e = parse("http_addr = ", &[], &[]).unwrap_err();
        assert!(e.0.contains("not valid TOML"), "{}", e.0);
        let e = parse("public_tls = \"maybe\"", &[], &[]).unwrap_err();
        assert!(e.0.contains("true or false"), "{}", e.0);
    }

    #[test]
    fn the_config_flag_is_found_and_stripped() {
        let args: Vec<String> = [
            "drover",
            "run",
            "--config",
            "/etc/drover.toml",
            "--http-addr",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(path_from(&args), Some(PathBuf::from("/etc/drover.toml")));
        assert_eq!(strip(args), vec!["drover", "run", "--http-addr", "x"]);
    }
}
