//! Derives for sluice parameter declarations.
//!
//! `#[derive(Params)]` turns a struct whose fields are documented parameters
//! into a `sluice_config::Params` implementation: a static `SectionSpec`
//! (the single declaration used for parsing, diagnostics, masking and docs)
//! and a `from_element` that reads a configuration section against it.
//!
//! Field attributes:
//! * `#[param(default = "text", alias = "old", secret, deprecated = "why", obsoleted = "why", name = "key", arg)]`
//! * `#[section(name = "server", alias = "other")]`: a nested section; the
//!   field type says how many (`Option<S>`, `Vec<S>`, `S`) and what (`S: Params`
//!   or `Element` for sections typed by their own `@type`). An `Element`
//!   section read later with known parameters names them with
//!   `params = Type`, for docs and masking.
//!
//! * `#[flatten]`: another `Params` struct read from the same section (shared
//!   groups such as the time parameters every formatter has).
//!
//! Struct attribute: `#[params(open)]` accepts any key.
//!
//! Every field must have a doc comment: it is the user-facing description.
//!
//! `#[derive(ParamEnum)]` makes a unit-only enum a parameter type; values
//! are the snake_case variant names unless `#[value = "..."]` says otherwise.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{
    Attribute, Data, DeriveInput, Expr, Fields, GenericArgument, Lit, LitStr, PathArguments, Type, parse_macro_input,
};

fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if a.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &a.meta
            && let Expr::Lit(l) = &nv.value
            && let Lit::Str(s) = &l.lit
        {
            lines.push(s.value().trim().to_string());
        }
    }
    lines.join(" ").trim().to_string()
}

fn wrapper_inner<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    if let Type::Path(tp) = ty
        && let Some(seg) = tp.path.segments.last()
        && seg.ident == name
        && let PathArguments::AngleBracketed(args) = &seg.arguments
        && let Some(GenericArgument::Type(t)) = args.args.first()
    {
        return Some(t);
    }
    None
}

fn is_element(ty: &Type) -> bool {
    matches!(ty, Type::Path(tp) if tp.path.segments.last().is_some_and(|s| s.ident == "Element"))
}

#[derive(Default)]
struct ParamAttr {
    default: Option<String>,
    aliases: Vec<String>,
    secret: bool,
    deprecated: Option<String>,
    obsoleted: Option<String>,
    name: Option<String>,
    arg: bool,
}

#[derive(Default)]
struct SectionAttr {
    name: Option<String>,
    aliases: Vec<String>,
    params: Option<syn::Path>,
}

/// Derive `sluice_config::Params`.
#[proc_macro_derive(Params, attributes(param, section, params, flatten))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match params_impl(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn params_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "Params can only be derived for structs"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "Params needs named fields"));
    };
    let struct_doc = doc_of(&input.attrs);
    let mut open = false;
    for a in &input.attrs {
        if a.path().is_ident("params") {
            a.parse_nested_meta(|m| {
                if m.path.is_ident("open") {
                    open = true;
                    Ok(())
                } else {
                    Err(m.error("unknown params attribute"))
                }
            })?;
        }
    }

    let mut param_specs = Vec::new();
    let mut section_specs = Vec::new();
    let mut flattened = Vec::new();
    let mut reads = Vec::new();
    let mut builds = Vec::new();

    for f in &fields.named {
        let ident = f.ident.as_ref().expect("named field");
        let doc = doc_of(&f.attrs);
        if doc.is_empty() {
            return Err(syn::Error::new_spanned(
                ident,
                "every parameter needs a doc comment: it is the user-facing description",
            ));
        }
        if f.attrs.iter().any(|a| a.path().is_ident("flatten")) {
            let ty = &f.ty;
            flattened.push(quote!(<#ty as ::sluice_config::Params>::spec()));
            reads.push(quote! {
                let #ident: Option<#ty> = {
                    let saved = cx.skip_unused;
                    cx.skip_unused = true;
                    let r = <#ty as ::sluice_config::Params>::from_element(el, cx);
                    cx.skip_unused = saved;
                    if r.is_none() { ok = false; }
                    r
                };
            });
            builds.push(quote!(#ident: #ident?));
            continue;
        }
        let section_attr = f.attrs.iter().find(|a| a.path().is_ident("section"));
        if let Some(attr) = section_attr {
            let mut sa = SectionAttr::default();
            if matches!(attr.meta, syn::Meta::List(_)) {
                attr.parse_nested_meta(|m| {
                    if m.path.is_ident("name") {
                        sa.name = Some(m.value()?.parse::<LitStr>()?.value());
                    } else if m.path.is_ident("alias") {
                        sa.aliases.push(m.value()?.parse::<LitStr>()?.value());
                    } else if m.path.is_ident("params") {
                        sa.params = Some(m.value()?.parse::<syn::Path>()?);
                    } else {
                        return Err(m.error("unknown section attribute"));
                    }
                    Ok(())
                })?;
            }
            let sname = sa.name.unwrap_or_else(|| ident.to_string());
            let aliases = &sa.aliases;
            let (inner, multi, required) = if let Some(t) = wrapper_inner(&f.ty, "Option") {
                (t, false, false)
            } else if let Some(t) = wrapper_inner(&f.ty, "Vec") {
                (t, true, false)
            } else {
                (&f.ty, false, true)
            };
            let raw = is_element(inner);
            let spec_fn = match (&sa.params, raw) {
                (Some(p), _) => quote!(Some(<#p as ::sluice_config::Params>::spec)),
                (None, true) => quote!(None),
                (None, false) => quote!(Some(<#inner as ::sluice_config::Params>::spec)),
            };
            let idx = section_specs.len();
            section_specs.push(quote! {
                ::sluice_config::SubSectionSpec {
                    name: #sname,
                    aliases: &[#(#aliases),*],
                    multi: #multi,
                    required: #required,
                    doc: #doc,
                    spec: #spec_fn,
                }
            });
            let call = if raw {
                quote!(cx.raw_sections(el, &spec.sections[#idx]))
            } else {
                quote!(cx.sections::<#inner>(el, &spec.sections[#idx]))
            };
            reads.push(quote! {
                let #ident = match #call { Ok(v) => Some(v), Err(_) => { ok = false; None } };
            });
            let build = if multi {
                quote!(#ident: #ident?)
            } else if required {
                quote!(#ident: #ident?.into_iter().next()?)
            } else {
                quote!(#ident: #ident?.into_iter().next())
            };
            builds.push(build);
            continue;
        }

        let mut pa = ParamAttr::default();
        for a in f.attrs.iter().filter(|a| a.path().is_ident("param")) {
            a.parse_nested_meta(|m| {
                if m.path.is_ident("default") {
                    pa.default = Some(m.value()?.parse::<LitStr>()?.value());
                } else if m.path.is_ident("alias") {
                    pa.aliases.push(m.value()?.parse::<LitStr>()?.value());
                } else if m.path.is_ident("secret") {
                    pa.secret = true;
                } else if m.path.is_ident("deprecated") {
                    pa.deprecated = Some(m.value()?.parse::<LitStr>()?.value());
                } else if m.path.is_ident("obsoleted") {
                    pa.obsoleted = Some(m.value()?.parse::<LitStr>()?.value());
                } else if m.path.is_ident("name") {
                    pa.name = Some(m.value()?.parse::<LitStr>()?.value());
                } else if m.path.is_ident("arg") {
                    pa.arg = true;
                } else {
                    return Err(m.error("unknown param attribute"));
                }
                Ok(())
            })?;
        }
        let pname = pa.name.clone().unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_string());
        let (inner, optional) = match wrapper_inner(&f.ty, "Option") {
            Some(t) => (t, true),
            None => (&f.ty, false),
        };
        if optional && pa.default.is_some() {
            return Err(syn::Error::new_spanned(ident, "an Option parameter cannot have a default; use a plain type"));
        }
        let required = !optional && pa.default.is_none();
        let default = match &pa.default {
            Some(d) => quote!(Some(#d)),
            None => quote!(None),
        };
        let aliases = &pa.aliases;
        let secret = pa.secret;
        let opt = |o: &Option<String>| match o {
            Some(s) => quote!(Some(#s)),
            None => quote!(None),
        };
        let deprecated = opt(&pa.deprecated);
        let obsoleted = opt(&pa.obsoleted);
        let from_arg = pa.arg;
        let idx = param_specs.len();
        param_specs.push(quote! {
            ::sluice_config::ParamSpec {
                name: #pname,
                aliases: &[#(#aliases),*],
                ty: <#inner as ::sluice_config::ParamValue>::type_name(),
                enum_values: <#inner as ::sluice_config::ParamValue>::enum_values(),
                default: #default,
                required: #required,
                from_arg: #from_arg,
                doc: #doc,
                secret: #secret,
                deprecated: #deprecated,
                obsoleted: #obsoleted,
            }
        });
        reads.push(quote! {
            let #ident: Option<#inner> = match cx.param::<#inner>(el, &spec.params[#idx]) { Ok(v) => v, Err(_) => { ok = false; None } };
        });
        builds.push(if optional { quote!(#ident) } else { quote!(#ident: #ident?) });
    }

    Ok(quote! {
        impl ::sluice_config::Params for #name {
            fn spec() -> &'static ::sluice_config::SectionSpec {
                static SPEC: ::std::sync::OnceLock<::sluice_config::SectionSpec> = ::std::sync::OnceLock::new();
                SPEC.get_or_init(|| {
                    #[allow(unused_mut)]
                    let mut params = vec![#(#param_specs),*];
                    #[allow(unused_mut)]
                    let mut sections = vec![#(#section_specs),*];
                    #(
                        let inner = #flattened;
                        params.extend(inner.params.iter().cloned());
                        sections.extend(inner.sections.iter().cloned());
                    )*
                    ::sluice_config::SectionSpec { doc: #struct_doc, open: #open, params, sections }
                })
            }

            #[allow(clippy::question_mark, unused_mut)]
            fn from_element(el: &::sluice_config::Element, cx: &mut ::sluice_config::ConfigureCx<'_>) -> Option<Self> {
                let spec = <Self as ::sluice_config::Params>::spec();
                let mut ok = true;
                #(#reads)*
                cx.check_unused(el, spec);
                if !ok {
                    return None;
                }
                Some(Self { #(#builds),* })
            }
        }
    })
}

/// Derive `sluice_config::ParamValue` for a unit-only enum.
#[proc_macro_derive(ParamEnum, attributes(value))]
pub fn derive_param_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match enum_impl(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn enum_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "ParamEnum can only be derived for enums"));
    };
    let mut values = Vec::new();
    let mut idents = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(&v.ident, "ParamEnum variants must be unit variants"));
        }
        let mut value = snake(&v.ident.to_string());
        for a in &v.attrs {
            if a.path().is_ident("value")
                && let syn::Meta::NameValue(nv) = &a.meta
                && let Expr::Lit(l) = &nv.value
                && let Lit::Str(s) = &l.lit
            {
                value = s.value();
            }
        }
        values.push(value);
        idents.push(&v.ident);
    }
    let first = values.first().cloned().unwrap_or_default();
    let idx: Vec<usize> = (0..idents.len()).collect();
    Ok(quote! {
        impl #name {
            /// The spelling used in configuration files.
            pub fn as_str(&self) -> &'static str {
                match self { #(#name::#idents => #values),* }
            }
        }
        impl ::sluice_config::ParamEnumValues for #name {
            const VALUES: &'static [&'static str] = &[#(#values),*];
        }
        impl ::sluice_config::ParamValue for #name {
            fn type_name() -> &'static str { "enum" }
            fn example() -> &'static str { #first }
            fn enum_values() -> Option<&'static [&'static str]> {
                Some(<#name as ::sluice_config::ParamEnumValues>::VALUES)
            }
            fn parse(s: &str) -> Result<Self, String> {
                let i = ::sluice_config::types::parse_enum(s, <#name as ::sluice_config::ParamEnumValues>::VALUES)?;
                Ok(match i { #(#idx => #name::#idents,)* _ => unreachable!("parse_enum returns an index into VALUES") })
            }
        }
        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    })
}
