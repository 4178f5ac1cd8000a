//! Embedded `"#{…}"` expressions in configuration values, without Ruby.
//!
//! Supported: `ENV["X"]`, `ENV['X']`, `ENV.fetch('X', 'd')`, `… || "default"`,
//! `use_nil`, `use_default`, `Socket.gethostname`, `hostname`, `worker_id`,
//! literals and the string methods of [`sluice_ruby::expr`]. Anything else is
//! an error naming the expression.

use sluice_config::{Embedded, Evaluator};
use sluice_ruby::{Expr, RValue, Scope};

const USE_NIL: &str = "\u{0}use_nil";
const USE_DEFAULT: &str = "\u{0}use_default";

/// Evaluates `#{…}` for one worker.
pub struct ConfigEval {
    /// The worker id (`None` in the supervisor: `worker_id` is "").
    pub worker_id: Option<u32>,
    /// The host name.
    pub hostname: String,
}

impl Scope for ConfigEval {
    fn var(&self, name: &str) -> Option<RValue> {
        Some(match name {
            "hostname" => RValue::Str(self.hostname.clone()),
            "worker_id" => RValue::Str(self.worker_id.map(|w| w.to_string()).unwrap_or_default()),
            "use_nil" => RValue::Sym(USE_NIL.into()),
            "use_default" => RValue::Sym(USE_DEFAULT.into()),
            _ => return None,
        })
    }

    fn env(&self, key: &str) -> Option<String> {
        if key == "SERVERENGINE_WORKER_ID" {
            return self.worker_id.map(|w| w.to_string());
        }
        std::env::var(key).ok()
    }

    fn hostname(&self) -> String {
        self.hostname.clone()
    }
}

impl Evaluator for ConfigEval {
    fn eval(&self, code: &str) -> Result<Embedded, String> {
        let fail = |e: String| {
            format!(
                "cannot evaluate `#{{{}}}`: {e} (supported: ENV[\"X\"], ENV.fetch(\"X\", \"default\"), `|| \"default\"`, use_nil, use_default, hostname, worker_id, Socket.gethostname, literals and string methods)",
                code.trim()
            )
        };
        let expr = Expr::parse(code).map_err(|e| fail(e.0))?;
        match expr.eval(self).map_err(|e| fail(e.0))? {
            RValue::Sym(s) if s == USE_NIL => Ok(Embedded::Nil),
            RValue::Sym(s) if s == USE_DEFAULT => Ok(Embedded::Default),
            v => Ok(Embedded::Str(v.to_s())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_idioms() {
        let e = ConfigEval { worker_id: Some(2), hostname: "h1".into() };
        let ev = |c: &str| e.eval(c);
        // SAFETY-free: set_var is not used; PATH always exists.
        assert!(matches!(ev(r#"ENV["PATH"]"#), Ok(Embedded::Str(s)) if !s.is_empty()));
        assert_eq!(ev(r#"ENV["SLUICE_SURELY_UNSET"] || "dflt""#), Ok(Embedded::Str("dflt".into())));
        assert_eq!(ev("ENV.fetch('SLUICE_SURELY_UNSET', 'd')"), Ok(Embedded::Str("d".into())));
        assert_eq!(ev(r#"ENV["SLUICE_SURELY_UNSET"] || use_nil"#), Ok(Embedded::Nil));
        assert_eq!(ev("use_default"), Ok(Embedded::Default));
        assert_eq!(ev("Socket.gethostname"), Ok(Embedded::Str("h1".into())));
        assert_eq!(ev("hostname"), Ok(Embedded::Str("h1".into())));
        assert_eq!(ev("worker_id"), Ok(Embedded::Str("2".into())));
        assert_eq!(ev("ENV['SERVERENGINE_WORKER_ID']"), Ok(Embedded::Str("2".into())));
        assert_eq!(ev(r#"ENV["SLUICE_SURELY_UNSET"]"#), Ok(Embedded::Str(String::new())));
        let err = ev("File.read('/etc/passwd')").unwrap_err();
        assert!(err.starts_with("cannot evaluate `#{File.read('/etc/passwd')}`: uninitialized constant File"), "{err}");
        assert!(ev("`ls`").is_err());
    }
}
