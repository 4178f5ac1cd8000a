//! Declared parameters: one declaration per parameter drives parsing,
//! diagnostics, `--dry-run`, secret masking and the generated reference.
//!
//! A plugin declares its parameters as a struct with `#[derive(Params)]`:
//!
//! ```ignore
//! /// Prints events to standard output.
//! #[derive(Params)]
//! pub struct StdoutParams {
//!     /// Write through the logger instead of stdout directly.
//!     #[param(default = "true")]
//!     pub use_logger: bool,
//!     /// Output format section.
//!     #[section(name = "format")]
//!     pub format: Option<Element>,
//! }
//! ```
//!
//! The derive builds a static [`SectionSpec`] (names, types, defaults, docs,
//! secrets, deprecations, nested sections) and a `from_element` that reads an
//! [`Element`] against it through a [`ConfigureCx`], reporting every problem
//! with its location. Field types decide coercion ([`ParamValue`]):
//! `T` with a default or `Option<T>` are optional, `T` without a default is
//! required. Sections are `Option<S>`, `Vec<S>` (repeatable) or `S`
//! (required), where `S` is another `Params` struct or a raw [`Element`]
//! (for sections whose parameters depend on their own `@type`).

use crate::ast::Element;
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::source::Span;
use crate::types::ParamValue;

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// The key.
    pub name: &'static str,
    /// Other accepted keys (e.g. `dummy` for `sample`).
    pub aliases: &'static [&'static str],
    /// Type name for docs and messages.
    pub ty: &'static str,
    /// Allowed values, for enums.
    pub enum_values: Option<&'static [&'static str]>,
    /// Default, as config text parsed by the same code as user values.
    /// `None` with `required == false` means "nil".
    pub default: Option<&'static str>,
    /// Missing means error.
    pub required: bool,
    /// Comes from the section argument (`<buffer ARG>`), not a key.
    pub from_arg: bool,
    /// The user-facing description.
    pub doc: &'static str,
    /// Masked as `xxxxxx` in dumps and logs.
    pub secret: bool,
    /// Still works, with a warning carrying this text.
    pub deprecated: Option<&'static str>,
    /// No longer works: an error carrying this text.
    pub obsoleted: Option<&'static str>,
}

impl ParamSpec {
    /// True if `key` names this parameter (name or alias).
    pub fn matches(&self, key: &str) -> bool {
        self.name == key || self.aliases.contains(&key)
    }
}

/// A nested section a section accepts.
#[derive(Debug, Clone)]
pub struct SubSectionSpec {
    /// Element name (`buffer`, `server`, …).
    pub name: &'static str,
    /// Other accepted element names.
    pub aliases: &'static [&'static str],
    /// May appear several times.
    pub multi: bool,
    /// Must appear.
    pub required: bool,
    /// Description.
    pub doc: &'static str,
    /// Its parameters, when statically known (`None` for `@type`-dependent sections).
    pub spec: Option<fn() -> &'static SectionSpec>,
}

/// Everything a section (or a plugin's own element) accepts.
#[derive(Debug, Clone)]
pub struct SectionSpec {
    /// Description (the struct's doc comment).
    pub doc: &'static str,
    /// Accepts any key (e.g. `<record>`): unknown keys are not reported.
    pub open: bool,
    /// Declared parameters in declaration order.
    pub params: Vec<ParamSpec>,
    /// Declared nested sections.
    pub sections: Vec<SubSectionSpec>,
}

impl SectionSpec {
    /// The declaration of `key`, by name or alias.
    pub fn param(&self, key: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.matches(key))
    }

    /// The nested section named `name`.
    pub fn section(&self, name: &str) -> Option<&SubSectionSpec> {
        self.sections.iter().find(|s| s.name == name || s.aliases.contains(&name))
    }

    /// True if `key` is a secret parameter here.
    pub fn is_secret(&self, key: &str) -> bool {
        self.param(key).is_some_and(|p| p.secret)
    }
}

/// A struct whose fields are declared parameters (implemented by `#[derive(Params)]`).
pub trait Params: Sized {
    /// The declaration.
    fn spec() -> &'static SectionSpec;
    /// Read `el` against the declaration. Every problem goes into `cx`;
    /// `None` if any of them is an error.
    fn from_element(el: &Element, cx: &mut ConfigureCx<'_>) -> Option<Self>;
}

/// An error that has already been reported to [`Diagnostics`]; callers
/// only need to know that the value is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

/// Keys every plugin element accepts, handled by the runtime.
pub const RESERVED_KEYS: [&str; 7] = ["@type", "@id", "@label", "@log_level", "type", "id", "log_level"];

/// Configure-time context: where diagnostics go and which section we are in.
pub struct ConfigureCx<'d> {
    /// Collected problems.
    pub diags: &'d mut Diagnostics,
    /// Section path for messages, outermost first (`<match app.**>`, `<buffer>`).
    pub path: Vec<String>,
    /// Keys that the surrounding code handles itself (legacy parameters it maps).
    pub extra_known: Vec<&'static str>,
    /// Overridden defaults for this section: `(name, default)` (Fluentd's `config_set_default`).
    pub defaults: Vec<(&'static str, &'static str)>,
    /// Set while reading a flattened group, whose section the outer struct checks.
    pub skip_unused: bool,
}

impl<'d> ConfigureCx<'d> {
    /// A context writing into `diags`.
    pub fn new(diags: &'d mut Diagnostics) -> Self {
        ConfigureCx { diags, path: Vec::new(), extra_known: Vec::new(), defaults: Vec::new(), skip_unused: false }
    }

    /// `<match app.**> > <buffer>` for messages.
    pub fn path_string(&self) -> String {
        self.path.join(" > ")
    }

    fn where_suffix(&self) -> String {
        if self.path.is_empty() { String::new() } else { format!(" in {}", self.path_string()) }
    }

    /// Report an error at `span`, naming the section.
    pub fn error(&mut self, span: Span, message: impl AsRef<str>) -> &mut Diagnostic {
        let m = format!("{}{}", message.as_ref(), self.where_suffix());
        self.diags.error(span, m)
    }

    /// Report a warning at `span`, naming the section.
    pub fn warn(&mut self, span: Span, message: impl AsRef<str>) -> &mut Diagnostic {
        let m = format!("{}{}", message.as_ref(), self.where_suffix());
        self.diags.warn(span, m)
    }

    /// Read one declared parameter. `Ok(None)` means absent and optional.
    ///
    /// # Errors
    /// [`Reported`] after reporting a missing required value or a bad value.
    pub fn param<T: ParamValue>(&mut self, el: &Element, spec: &ParamSpec) -> Result<Option<T>, Reported> {
        let (raw, span) = if spec.from_arg {
            if el.arg.is_empty() { (None, el.span) } else { (Some(el.arg.clone()), el.arg_span) }
        } else {
            let found = el.params.iter().rev().find(|p| spec.matches(&p.key));
            match found {
                Some(p) => {
                    if let Some(msg) = spec.obsoleted {
                        self.error(p.key_span, format!("'{}' parameter is already removed: {msg}", spec.name));
                        return Err(Reported);
                    }
                    if let Some(msg) = spec.deprecated {
                        self.warn(p.key_span, format!("'{}' parameter is deprecated: {msg}", spec.name));
                    }
                    if p.key != spec.name {
                        // An alias: fine, silently.
                    }
                    (p.value.clone(), p.value_span)
                }
                None => (None, el.span),
            }
        };
        let present = raw.is_some();
        let text: Option<String> = match raw {
            Some(v) => Some(v),
            None => {
                let over = self.defaults.iter().find(|(n, _)| *n == spec.name).map(|(_, d)| *d);
                match over.or(spec.default) {
                    Some(d) => Some(d.to_string()),
                    None if spec.required => {
                        let what = if spec.from_arg {
                            format!("'{}' argument", spec.name)
                        } else {
                            format!("'{}' parameter", spec.name)
                        };
                        let nil_given = !spec.from_arg && el.params.iter().any(|p| spec.matches(&p.key));
                        let msg = if nil_given {
                            format!("{what} is required but nil is specified")
                        } else {
                            format!("{what} is required")
                        };
                        self.error(span, msg);
                        return Err(Reported);
                    }
                    None => None,
                }
            }
        };
        let Some(text) = text else { return Ok(None) };
        match T::parse(&text) {
            Ok(v) => Ok(Some(v)),
            Err(reason) if present && T::parse_lenient(&text).is_some() => {
                let (v, how) = T::parse_lenient(&text).expect("checked above");
                let d = self.diags.lenient(span, format!("'{}' parameter: {how}{}", spec.name, self.where_suffix()));
                d.help(format!(
                    "write a plain {} (e.g. `{} {}`); --strict rejects this ({reason})",
                    T::type_name(),
                    spec.name,
                    T::example()
                ));
                Ok(Some(v))
            }
            Err(reason) => {
                let msg = if present {
                    format!(
                        "'{}' parameter: {reason} (expected {}, e.g. `{} {}`)",
                        spec.name,
                        T::type_name(),
                        spec.name,
                        T::example()
                    )
                } else {
                    format!("BUG: default of '{}' does not parse: {reason}", spec.name)
                };
                self.error(span, msg);
                Err(Reported)
            }
        }
    }

    /// Read nested sections named like `sub` and parse each with `S`.
    pub fn sections<S: Params>(&mut self, el: &Element, sub: &SubSectionSpec) -> Result<Vec<S>, Reported> {
        let mut out = Vec::new();
        let mut failed = false;
        for child in self.matching_children(el, sub)? {
            self.path.push(child.display_name());
            let saved_defaults = std::mem::take(&mut self.defaults);
            let saved_known = std::mem::take(&mut self.extra_known);
            let saved_skip = std::mem::replace(&mut self.skip_unused, false);
            let r = S::from_element(child, self);
            self.defaults = saved_defaults;
            self.extra_known = saved_known;
            self.skip_unused = saved_skip;
            self.path.pop();
            match r {
                Some(v) => out.push(v),
                None => failed = true,
            }
        }
        if failed { Err(Reported) } else { Ok(out) }
    }

    /// Nested sections named like `sub`, kept as raw elements.
    pub fn raw_sections(&mut self, el: &Element, sub: &SubSectionSpec) -> Result<Vec<Element>, Reported> {
        Ok(self.matching_children(el, sub)?.into_iter().cloned().collect())
    }

    fn matching_children<'e>(&mut self, el: &'e Element, sub: &SubSectionSpec) -> Result<Vec<&'e Element>, Reported> {
        let found: Vec<&Element> =
            el.elements.iter().filter(|e| e.name == sub.name || sub.aliases.contains(&e.name.as_str())).collect();
        if sub.required && found.is_empty() {
            self.error(el.span, format!("'<{}>' sections are required", sub.name));
            return Err(Reported);
        }
        if !sub.multi && found.len() > 1 {
            self.error(found[1].span, format!("'<{}>' section cannot be written twice or more", sub.name));
            return Err(Reported);
        }
        Ok(found)
    }

    /// Report keys and sections of `el` that `spec` does not declare
    /// (Fluentd: "parameter 'X' in <section> is not used."), with a
    /// suggestion for likely typos. `--strict` makes them errors.
    pub fn check_unused(&mut self, el: &Element, spec: &SectionSpec) {
        if spec.open || self.skip_unused {
            return;
        }
        let section = if self.path.is_empty() { el.display_name() } else { self.path_string() };
        for p in &el.params {
            let k = p.key.as_str();
            if spec.param(k).is_some() || RESERVED_KEYS.contains(&k) || self.extra_known.contains(&k) {
                continue;
            }
            let names = spec
                .params
                .iter()
                .filter(|s| !s.from_arg)
                .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()));
            let hint = did_you_mean(k, names);
            let d = self.diags.lenient(p.key_span, format!("parameter '{k}' in {section} is not used"));
            if let Some(h) = hint {
                d.help(format!("did you mean `{h}`?"));
            }
        }
        for child in &el.elements {
            if spec.section(&child.name).is_some() {
                continue;
            }
            let hint = did_you_mean(&child.name, spec.sections.iter().map(|s| s.name));
            let d = self.diags.lenient(child.span, format!("section <{}> is not used in {section}", child.name));
            if let Some(h) = hint {
                d.help(format!("did you mean `<{h}>`?"));
            }
        }
    }
}

/// A secret value: shown as `xxxxxx` by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("xxxxxx")
    }
}

impl Secret {
    /// The real value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl ParamValue for Secret {
    fn type_name() -> &'static str {
        "string"
    }
    fn example() -> &'static str {
        "secret"
    }
    fn parse(s: &str) -> Result<Self, String> {
        Ok(Secret(s.to_string()))
    }
}

/// Render a section's declaration as Markdown (for `sluice plugin-doc`).
pub fn render_markdown(title: &str, spec: &SectionSpec, out: &mut String, level: usize) {
    use std::fmt::Write as _;
    let hashes = "#".repeat(level);
    let _ = writeln!(out, "{hashes} {title}\n");
    if !spec.doc.is_empty() {
        let _ = writeln!(out, "{}\n", spec.doc);
    }
    if spec.open {
        let _ = writeln!(out, "Accepts any parameter name.\n");
    }
    if !spec.params.is_empty() {
        let _ = writeln!(out, "| parameter | type | default | description |\n|---|---|---|---|");
        for p in &spec.params {
            let mut name = if p.from_arg {
                format!("`<{} ARG>` argument", title.trim_matches(['<', '>']))
            } else {
                format!("`{}`", p.name)
            };
            if !p.aliases.is_empty() {
                name.push_str(&format!(
                    " (alias {})",
                    p.aliases.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                ));
            }
            let ty = match p.enum_values {
                Some(v) => format!("enum: {}", v.join(" / ")),
                None => p.ty.to_string(),
            };
            let default = if p.required {
                "required".to_string()
            } else {
                match p.default {
                    Some(d) if p.secret => {
                        format!("`{}`", if d.is_empty() { "" } else { "xxxxxx" })
                    }
                    Some(d) => format!("`{}`", d.replace('\n', "\\n").replace('|', "\\|")),
                    None => "nil".to_string(),
                }
            };
            let mut doc = p.doc.replace('\n', " ").replace('|', "\\|");
            if p.secret {
                doc.push_str(" (secret)");
            }
            if let Some(d) = p.deprecated {
                doc.push_str(&format!(" Deprecated: {d}"));
            }
            if let Some(d) = p.obsoleted {
                doc.push_str(&format!(" Removed: {d}"));
            }
            let _ = writeln!(out, "| {name} | {ty} | {default} | {doc} |");
        }
        out.push('\n');
    }
    for s in &spec.sections {
        let mut t = format!("<{}>", s.name);
        let mut notes = Vec::new();
        if s.required {
            notes.push("required");
        }
        if s.multi {
            notes.push("may repeat");
        }
        if !notes.is_empty() {
            t.push_str(&format!(" ({})", notes.join(", ")));
        }
        match s.spec {
            Some(f) => render_markdown(&t, f(), out, level + 1),
            None => {
                let _ = writeln!(out, "{} {t}\n\n{}\n", "#".repeat(level + 1), s.doc);
            }
        }
    }
}
