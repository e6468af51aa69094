//! KMS URIs (docs/KMS.md, "URIs"), parsed exactly as the Python package's
//! `exitless.kms.open_kms` and `pkcs11._parse_pkcs11_uri` do: `local:PATH` (taken
//! literally), and `pkcs11:module=PATH;token=LABEL;pin-env=VARIABLE` or
//! `...;pin-file=PATH`, percent-decoded, with the RFC 7512 spellings `module-path=`,
//! `token-label=`, `?...&...` query attributes and `pin-source=file:PATH`. A PIN in
//! the URI (`pin=`, `pin-value=`, another `pin-source`) is refused, and so are unknown,
//! repeated or empty attributes.

use crate::compat::{quote, repr, unquote};
use crate::error::{KmsError, Result};

/// What a KMS URI names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KmsUri {
    /// `local:PATH`, the path as written (not yet absolute).
    Local(String),
    /// `pkcs11:...`.
    Pkcs11(Pkcs11Uri),
}

/// Where the PIN of a `pkcs11:` URI comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PinSource {
    /// `pin-env=VARIABLE`.
    Env(String),
    /// `pin-file=PATH` (or `pin-source=file:PATH`).
    File(String),
}

/// A parsed `pkcs11:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pkcs11Uri {
    /// `module=`, as written (decoded).
    pub(crate) module: String,
    /// `token=`: the token label.
    pub(crate) token: String,
    /// `pin-env=` or `pin-file=`.
    pub(crate) pin: PinSource,
}

impl Pkcs11Uri {
    /// Python's `_format_pkcs11_uri`: `pkcs11:module=...;token=...;pin-env=...` (or
    /// `pin-file=`), each value percent-encoded except `/:@-._~`. No secret in it.
    pub(crate) fn canonical(&self) -> String {
        let pin = match &self.pin {
            PinSource::Env(v) => format!("pin-env={}", quote(v)),
            PinSource::File(p) => format!("pin-file={}", quote(p)),
        };
        format!("pkcs11:module={};token={};{pin}", quote(&self.module), quote(&self.token))
    }
}

/// Python's `open_kms` dispatch.
pub(crate) fn parse(uri: &str) -> Result<KmsUri> {
    if let Some(path) = uri.strip_prefix("local:") {
        if path.is_empty() {
            return Err(KmsError::Config(
                "'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json".into(),
            ));
        }
        return Ok(KmsUri::Local(path.to_string()));
    }
    if uri.starts_with("pkcs11:") {
        return parse_pkcs11(uri).map(KmsUri::Pkcs11);
    }
    let scheme: String = match uri.split_once(':') {
        Some((scheme, _)) => scheme.to_string(),
        None => uri.chars().take(20).collect(),
    };
    Err(KmsError::Config(format!("unknown KMS URI scheme {} (known: local:, pkcs11:)", repr(&scheme))))
}

const KNOWN: [&str; 4] = ["module", "token", "pin-env", "pin-file"];

/// Python's `_parse_pkcs11_uri`.
pub(crate) fn parse_pkcs11(uri: &str) -> Result<Pkcs11Uri> {
    let Some(body) = uri.strip_prefix("pkcs11:") else {
        return Err(KmsError::Config("a PKCS#11 KMS URI starts with 'pkcs11:'".into()));
    };
    let (path_part, query) = body.split_once('?').unwrap_or((body, ""));
    let items =
        path_part.split(';').filter(|p| !p.is_empty()).chain(query.split('&').filter(|q| !q.is_empty()));
    let mut attrs: Vec<(&'static str, String)> = Vec::new();
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.trim().to_lowercase(), value),
            None => {
                return Err(KmsError::Config(format!(
                    "PKCS#11 URI attribute {} has no '=value'",
                    repr(&item.trim().to_lowercase())
                )))
            }
        };
        let mut value = unquote(value);
        let pin_in_uri = matches!(name.as_str(), "pin" | "pin-value" | "pin-source")
            && !(name == "pin-source" && value.starts_with("file:"));
        if pin_in_uri {
            return Err(KmsError::Config(
                "a PIN must never be written in a KMS URI; use pin-env=VARIABLE or pin-file=PATH".into(),
            ));
        }
        let name = match name.as_str() {
            "pin-source" => {
                value = value["file:".len()..].to_string();
                "pin-file"
            }
            "module-path" => "module",
            "token-label" => "token",
            other => match KNOWN.iter().find(|k| **k == other) {
                Some(k) => k,
                None => {
                    return Err(KmsError::Config(format!(
                        "unknown PKCS#11 URI attribute {} (known: {})",
                        repr(other),
                        KNOWN.join(", ")
                    )))
                }
            },
        };
        if attrs.iter().any(|(n, _)| *n == name) {
            return Err(KmsError::Config(format!("PKCS#11 URI attribute {} is given twice", repr(name))));
        }
        if value.is_empty() {
            return Err(KmsError::Config(format!("PKCS#11 URI attribute {} is empty", repr(name))));
        }
        attrs.push((name, value));
    }
    let get = |name: &str| attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let (Some(module), Some(token)) = (get("module"), get("token")) else {
        let missing = if get("module").is_none() { "module" } else { "token" };
        return Err(KmsError::Config(format!("PKCS#11 URI needs {missing}=...")));
    };
    let pin = match (get("pin-env"), get("pin-file")) {
        (Some(var), None) => PinSource::Env(var),
        (None, Some(path)) => PinSource::File(path),
        _ => {
            return Err(KmsError::Config(
                "PKCS#11 URI needs exactly one of pin-env=VARIABLE or pin-file=PATH".into(),
            ))
        }
    };
    Ok(Pkcs11Uri { module, token, pin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(uri: &str) -> String {
        match parse(uri) {
            Err(KmsError::Config(m)) => m,
            other => panic!("{uri}: {other:?}"),
        }
    }

    fn pkcs11(uri: &str) -> Pkcs11Uri {
        match parse(uri) {
            Ok(KmsUri::Pkcs11(p)) => p,
            other => panic!("{uri}: {other:?}"),
        }
    }

    const M: &str = "/usr/lib/softhsm/libsofthsm2.so";

    #[test]
    fn local_uris() {
        assert_eq!(parse("local:/etc/k.json").unwrap(), KmsUri::Local("/etc/k.json".into()));
        // Taken literally: no percent-decoding, relative paths kept for abspath.
        assert_eq!(parse("local:a%20b/../k").unwrap(), KmsUri::Local("a%20b/../k".into()));
        assert_eq!(
            config_error("local:"),
            "'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json"
        );
        assert_eq!(config_error("file:/k"), "unknown KMS URI scheme 'file' (known: local:, pkcs11:)");
        assert_eq!(config_error("LOCAL:/k"), "unknown KMS URI scheme 'LOCAL' (known: local:, pkcs11:)");
        assert_eq!(
            config_error("no scheme at all, a long string"),
            "unknown KMS URI scheme 'no scheme at all, a ' (known: local:, pkcs11:)"
        );
    }

    #[test]
    fn pkcs11_uris() {
        let p = pkcs11(&format!("pkcs11:module={M};token=exitless;pin-env=EXITLESS_HSM_PIN"));
        assert_eq!((p.module.as_str(), p.token.as_str()), (M, "exitless"));
        assert_eq!(p.pin, PinSource::Env("EXITLESS_HSM_PIN".into()));
        assert_eq!(p.canonical(), format!("pkcs11:module={M};token=exitless;pin-env=EXITLESS_HSM_PIN"));
        // Percent-encoding, RFC 7512 spellings, query attributes, case and spaces in names.
        let p = pkcs11("pkcs11:module-path=/m%3Bx.so;token-label=my%20token?pin-source=file:/run/pin%25");
        assert_eq!((p.module.as_str(), p.token.as_str()), ("/m;x.so", "my token"));
        assert_eq!(p.pin, PinSource::File("/run/pin%".into()));
        assert_eq!(p.canonical(), "pkcs11:module=/m%3Bx.so;token=my%20token;pin-file=/run/pin%25");
        let p = pkcs11("pkcs11:;; MODULE =/m;;token=t?&pin-file=/p&");
        assert_eq!((p.module.as_str(), p.token.as_str(), p.pin), ("/m", "t", PinSource::File("/p".into())));
    }

    #[test]
    fn pkcs11_uri_refusals() {
        let pin = "a PIN must never be written in a KMS URI; use pin-env=VARIABLE or pin-file=PATH";
        for uri in [
            "pkcs11:module=/m;token=t;pin=1234",
            "pkcs11:module=/m;token=t?pin-value=1234",
            "pkcs11:module=/m;token=t;pin-source=1234",
            "pkcs11:module=/m;token=t;PIN=1234;pin-env=V",
        ] {
            let m = config_error(uri);
            assert_eq!(m, pin);
            assert!(!m.contains("1234"));
        }
        assert_eq!(
            config_error("pkcs11:module=/m;token=t;pin-env"),
            "PKCS#11 URI attribute 'pin-env' has no '=value'"
        );
        assert_eq!(
            config_error("pkcs11:module=/m;token=t;slot=1;pin-env=V"),
            "unknown PKCS#11 URI attribute 'slot' (known: module, token, pin-env, pin-file)"
        );
        assert_eq!(
            config_error("pkcs11:module=/m;module-path=/n;token=t;pin-env=V"),
            "PKCS#11 URI attribute 'module' is given twice"
        );
        assert_eq!(
            config_error("pkcs11:module=/m;token=;pin-env=V"),
            "PKCS#11 URI attribute 'token' is empty"
        );
        assert_eq!(config_error("pkcs11:token=t;pin-env=V"), "PKCS#11 URI needs module=...");
        assert_eq!(config_error("pkcs11:module=/m;pin-env=V"), "PKCS#11 URI needs token=...");
        let one = "PKCS#11 URI needs exactly one of pin-env=VARIABLE or pin-file=PATH";
        assert_eq!(config_error("pkcs11:module=/m;token=t"), one);
        assert_eq!(config_error("pkcs11:module=/m;token=t;pin-env=V;pin-file=/p"), one);
        assert!(matches!(parse_pkcs11("local:/x"), Err(KmsError::Config(_))));
    }
}
