//! The parsed configuration: a tree of [`Element`]s, as Fluentd's
//! `Config::Element`, with a span on every name, argument, key and value.
//!
//! Values are kept as strings after quote processing and `#{…}`
//! evaluation; typing happens later, against each plugin's declared
//! parameters (see [`crate::params`]).

use crate::source::Span;

/// How a value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Bare text up to the end of the line (or a ` #` comment).
    None,
    /// `'…'`: no escapes but `\'` and `\\`, no embedded expressions.
    Single,
    /// `"…"`: escapes and `#{…}` expressions.
    Double,
    /// A JSON array or object (starting with `[` or `{`), possibly over several lines.
    Json,
    /// A key with no value at all.
    Empty,
}

/// One `key value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The key as written.
    pub key: String,
    /// The value; `None` when an embedded `use_nil` made it nil.
    pub value: Option<String>,
    /// Where the key is.
    pub key_span: Span,
    /// Where the value is (the whole literal, quotes included).
    pub value_span: Span,
    /// How the value was written.
    pub quote: Quote,
}

impl Param {
    /// The value, or "" for nil.
    pub fn str(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// A section: `<name arg> … </name>`, or the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// `source`, `match`, `buffer`, … (`ROOT` for the top).
    pub name: String,
    /// Text after the name in the opening tag (`app.** other.*`, `tag,time`, `@NAME`).
    pub arg: String,
    /// The whole opening tag.
    pub span: Span,
    /// The argument.
    pub arg_span: Span,
    /// `key value` lines, in order.
    pub params: Vec<Param>,
    /// Nested sections, in order.
    pub elements: Vec<Element>,
}

impl Element {
    /// A new element with no content.
    pub fn new(name: impl Into<String>, arg: impl Into<String>) -> Self {
        Element { name: name.into(), arg: arg.into(), ..Default::default() }
    }

    /// The last param with this key (a later line overrides an earlier one, as in Fluentd).
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }

    /// The value of a param (nil and absent both give `None`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.param(key).and_then(|p| p.value.as_deref())
    }

    /// True if a param with this key exists.
    pub fn has(&self, key: &str) -> bool {
        self.param(key).is_some()
    }

    /// Set or add a param (used when mapping legacy parameters).
    pub fn set(&mut self, key: &str, value: impl Into<String>, span: Span) {
        let value = Some(value.into());
        if let Some(p) = self.params.iter_mut().rev().find(|p| p.key == key) {
            p.value = value;
        } else {
            self.params.push(Param { key: key.into(), value, key_span: span, value_span: span, quote: Quote::None });
        }
    }

    /// Remove all params with this key, returning the last.
    pub fn remove(&mut self, key: &str) -> Option<Param> {
        let last = self.param(key).cloned();
        self.params.retain(|p| p.key != key);
        last
    }

    /// Nested sections with this name.
    pub fn elements_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements.iter().filter(move |e| e.name == name)
    }

    /// `@type` (or legacy `type`).
    pub fn type_name(&self) -> Option<&str> {
        self.get("@type").or_else(|| self.get("type"))
    }

    /// How this section is named in messages: `<match app.**>`, `<buffer tag,time>`, `<source>`.
    pub fn display_name(&self) -> String {
        if self.arg.is_empty() { format!("<{}>", self.name) } else { format!("<{} {}>", self.name, self.arg) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_params_win_and_set_replaces() {
        let mut e = Element::new("match", "app.**");
        e.set("a", "1", Span::NONE);
        e.params.push(Param {
            key: "a".into(),
            value: Some("2".into()),
            key_span: Span::NONE,
            value_span: Span::NONE,
            quote: Quote::None,
        });
        assert_eq!(e.get("a"), Some("2"));
        e.set("a", "3", Span::NONE);
        assert_eq!(e.get("a"), Some("3"));
        assert_eq!(e.remove("a").and_then(|p| p.value), Some("3".into()));
        assert!(!e.has("a"));
        assert_eq!(e.display_name(), "<match app.**>");
    }
}
