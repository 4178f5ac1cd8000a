//! The effective configuration as Fluentd logs it at start
//! (`using configuration file: <ROOT> … </ROOT>`): declared string
//! parameters quoted, secrets masked as `xxxxxx`.

use crate::plugin::registry;
use sluice_config::{Element, SectionSpec};
use std::fmt::Write as _;

/// Finds the declaration of a section: (parent's declaration, the section, its depth).
pub type SpecLookup<'a> = &'a dyn Fn(Option<&'static SectionSpec>, &Element, usize) -> Option<&'static SectionSpec>;

/// Render `root` with two-space indentation, using the built-in plugins' declarations.
pub fn dump(root: &Element) -> String {
    dump_with(root, &spec_for_child)
}

/// Render `root` with declarations from `lookup`.
pub fn dump_with(root: &Element, lookup: SpecLookup<'_>) -> String {
    let mut out = String::new();
    write_element(&mut out, root, None, 0, lookup);
    out.trim_end().to_string()
}

fn spec_for_child(parent: Option<&'static SectionSpec>, child: &Element, depth: usize) -> Option<&'static SectionSpec> {
    if depth == 0 {
        let ty = child.type_name()?;
        return match child.name.as_str() {
            "source" => registry::spec("input", ty),
            "match" => registry::spec("output", ty),
            "filter" => registry::spec("filter", ty),
            "system" => Some(<crate::system::SystemParams as sluice_config::Params>::spec()),
            _ => None,
        };
    }
    if child.name == "format" {
        return registry::spec("formatter", child.type_name().unwrap_or("stdout"));
    }
    if child.name == "parse" {
        return registry::spec("parser", child.type_name()?);
    }
    if child.name == "store" || child.name == "secondary" {
        return registry::spec("output", child.type_name()?);
    }
    parent?.section(&child.name)?.spec.map(|f| f())
}

fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\'' => s.push_str("\\'"),
            '\\' => s.push_str("\\\\"),
            '\r' => s.push_str("\\r"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\u{0c}' => s.push_str("\\f"),
            '\u{08}' => s.push_str("\\b"),
            c => s.push(c),
        }
    }
    s
}

fn write_element(
    out: &mut String,
    el: &Element,
    spec: Option<&'static SectionSpec>,
    depth: usize,
    lookup: SpecLookup<'_>,
) {
    let ind = "  ".repeat(depth);
    if el.arg.is_empty() {
        let _ = writeln!(out, "{ind}<{}>", el.name);
    } else {
        let _ = writeln!(out, "{ind}<{} {}>", el.name, el.arg);
    }
    // Later duplicates win but keep the first position (Ruby Hash order).
    let mut seen: Vec<&str> = Vec::new();
    for p in &el.params {
        if seen.contains(&p.key.as_str()) {
            continue;
        }
        seen.push(&p.key);
        let last = el.param(&p.key).unwrap_or(p);
        let decl = spec.and_then(|s| s.param(&p.key));
        let value = match &last.value {
            None => String::new(),
            Some(_) if decl.is_some_and(|d| d.secret) => "xxxxxx".into(),
            Some(v) if decl.is_some_and(|d| d.ty == "string") || (p.key == "@type" && depth > 1) => {
                format!("\"{}\"", escape(v))
            }
            Some(v) => v.clone(),
        };
        let _ = writeln!(out, "{ind}  {} {value}", p.key);
    }
    for c in &el.elements {
        write_element(out, c, lookup(spec, c, depth), depth + 1, lookup);
    }
    let _ = writeln!(out, "{ind}</{}>", el.name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{Diagnostics, Params, Secret, SourceMap};
    use std::path::Path;

    /// A plugin with secrets, like out_forward's `<security>`.
    #[derive(Params)]
    #[allow(dead_code)]
    struct WithSecret {
        /// A host.
        host: String,
        /// The key.
        #[param(secret)]
        shared_key: Secret,
        /// Nested.
        #[section(name = "server")]
        server: Vec<ServerSecret>,
    }

    #[derive(Params)]
    #[allow(dead_code)]
    struct ServerSecret {
        /// Password.
        #[param(secret, default = "")]
        password: Secret,
    }

    #[test]
    fn secrets_are_masked_at_every_depth() {
        let text = "<match **>\n  @type fake\n  host h\n  shared_key s3cr3t\n  <server>\n    password hunter2\n  </server>\n</match>\n";
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        let root =
            sluice_config::parse_str(Path::new("t"), "t", text.into(), &sluice_config::parser::NoEval, &mut sm, &mut d)
                .unwrap();
        let lookup = |parent: Option<&'static SectionSpec>, c: &Element, depth: usize| {
            if depth == 0 { Some(WithSecret::spec()) } else { parent?.section(&c.name)?.spec.map(|f| f()) }
        };
        let out = dump_with(&root, &lookup);
        assert!(!out.contains("s3cr3t") && !out.contains("hunter2"), "{out}");
        assert!(
            out.contains("    shared_key xxxxxx\n")
                && out.contains("      password xxxxxx\n")
                && out.contains("    host \"h\"\n"),
            "{out}"
        );
    }

    #[test]
    fn quotes_strings_and_masks_nothing_undeclared() {
        let text = "<source>\n  @type sample\n  tag test\n  rate 5\n</source>\n<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n";
        let mut sm = SourceMap::new();
        let mut d = Diagnostics::new(false);
        let root =
            sluice_config::parse_str(Path::new("t"), "t", text.into(), &sluice_config::parser::NoEval, &mut sm, &mut d)
                .unwrap();
        assert_eq!(
            dump(&root),
            "<ROOT>\n  <source>\n    @type sample\n    tag \"test\"\n    rate 5\n  </source>\n  <match **>\n    @type stdout\n    <format>\n      @type \"json\"\n    </format>\n  </match>\n</ROOT>"
        );
    }
}
