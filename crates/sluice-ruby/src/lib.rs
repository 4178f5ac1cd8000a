//! Ruby semantics that Fluentd configurations rely on, without Ruby.
//!
//! * [`regex`]: Ruby (Onigmo) regular expressions translated to the Rust
//!   `regex` crate, with `fancy-regex` as the fallback for look-around and
//!   back-references.
//! * [`expr`]: the expression subset used in `"#{…}"` configuration values
//!   and in record_transformer's `enable_ruby` placeholders.

pub mod expr;
pub mod regex;

pub use expr::{Expr, ExprError, RValue, Scope, str_to_f, str_to_i};
pub use regex::{ByteRegex, RubyFlags, RubyRegex};
