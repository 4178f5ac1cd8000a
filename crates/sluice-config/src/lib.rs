//! The Fluentd v1 configuration language.
//!
//! * [`parser`]: text → [`Element`] tree with spans, `@include`, quoting,
//!   JSON values and embedded `#{…}` expressions (through an [`Evaluator`]).
//! * [`types`]: value types and their coercion rules ([`ParamValue`]).
//! * [`params`]: declared parameters ([`Params`], derived with
//!   `#[derive(Params)]`) that drive parsing, diagnostics, masking and docs.
//! * [`diag`]: located diagnostics, collected and rendered all at once.

pub mod ast;
pub mod diag;
pub mod params;
pub mod parser;
pub mod source;
pub mod types;

pub use ast::{Element, Param, Quote};
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use params::{ConfigureCx, ParamSpec, Params, RESERVED_KEYS, Secret, SectionSpec, SubSectionSpec};
pub use parser::{Embedded, Evaluator, parse_file, parse_str};
pub use sluice_derive::{ParamEnum, Params};
pub use sluice_ruby::RubyRegex;
pub use source::{SourceMap, Span};
pub use types::{ParamEnumValues, ParamValue, Size, StrMap, TimeSpan};
