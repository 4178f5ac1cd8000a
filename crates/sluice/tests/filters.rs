//! filter_grep and filter_parser against Fluentd's behaviour (cases from
//! Fluentd's tests and from running its 1.19 filters).

use sluice::engine::build_from_str;
use sluice::plugin::FilterCx;
use sluice::router::ROOT;
use sluice_event::{EventStreamBuilder, EventTime, json};

/// The original event time.
const T: EventTime = EventTime { sec: 1000, nsec: 5 };

/// Run `<filter **>` with `body` over `records`; returns (time, JSON) per output event.
fn run(body: &str, records: &[&str]) -> Vec<(EventTime, String)> {
    let conf = format!("<filter **>\n{body}\n</filter>\n<match **>\n  @type null\n</match>\n");
    let e = build_from_str(&conf).unwrap_or_else(|e| panic!("{e}"));
    let label = e.router.label(ROOT).unwrap();
    let f = label.filters().next().unwrap();
    let mut b = EventStreamBuilder::new();
    for r in records {
        let mut raw = Vec::new();
        json::json_object_to_msgpack(r.as_bytes(), &mut raw).unwrap();
        b.push_raw(T, &raw);
    }
    let out = f.filter.filter("t", b.finish(), &FilterCx { router: &e.router, log: &f.info.log });
    out.iter()
        .map(|ev| {
            let mut j = Vec::new();
            json::write_json(ev.record.as_bytes(), &mut j).unwrap();
            (ev.time, String::from_utf8(j).unwrap())
        })
        .collect()
}

fn kept(body: &str, records: &[&str]) -> Vec<String> {
    run(body, records).into_iter().map(|(_, j)| j).collect()
}

fn config_error(body: &str) -> String {
    let conf = format!("<filter **>\n{body}\n</filter>\n<match **>\n  @type null\n</match>\n");
    match build_from_str(&conf) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => e,
    }
}

#[test]
fn grep_regexp_and_exclude() {
    let body = "@type grep\n<regexp>\n key m\n pattern /WARN/\n</regexp>";
    let recs = [
        r#"{"m":"WARN x"}"#,
        r#"{"m":["a","WARN"]}"#,
        r#"{"m":{"k":"WARN"}}"#,
        r#"{"m":""}"#,
        "{}",
        r#"{"m":null}"#,
        r#"{"m":123}"#,
        r#"{"m":true}"#,
        r#"{"m":1.5}"#,
    ];
    assert_eq!(kept(body, &recs), vec![recs[0], recs[1], recs[2]]);
    let body = "@type grep\n<exclude>\n key m\n pattern /^$/\n</exclude>";
    assert_eq!(
        kept(body, &[r#"{"m":""}"#, "{}", r#"{"m":null}"#, r#"{"m":"x"}"#, r#"{"m":0}"#]),
        vec![r#"{"m":"x"}"#, r#"{"m":0}"#]
    );
}

#[test]
fn grep_patterns_and_accessors() {
    let k = |pat: &str, v: &str| {
        !kept(&format!("@type grep\n<regexp>\n key m\n pattern {pat}\n</regexp>"), &[v]).is_empty()
    };
    assert!(k("warn", r#"{"m":"warn"}"#));
    assert!(!k("warn", r#"{"m":"WARN"}"#));
    assert!(k("/warn/i", r#"{"m":"WARN"}"#));
    assert!(!k("/a.b/", r#"{"m":"a\nb"}"#));
    assert!(k("/a.b/m", r#"{"m":"a\nb"}"#));
    assert!(k("/^b$/", r#"{"m":"a\nb\nc"}"#));
    let body = "@type grep\n<regexp>\n key $.a.b\n pattern /x/\n</regexp>";
    assert_eq!(kept(body, &[r#"{"a":{"b":"x"}}"#]), vec![r#"{"a":{"b":"x"}}"#]);
    // Digging into a string is an error: the record is kept.
    assert_eq!(kept(body, &[r#"{"a":"x"}"#]), vec![r#"{"a":"x"}"#]);
    assert!(kept(body, &[r#"{"a":null}"#]).is_empty());
    // Invalid UTF-8 never stops a match.
    let body = "@type grep\n<regexp>\n key m\n pattern /WARN/\n</regexp>";
    let mut raw = Vec::new();
    json::json_object_to_msgpack(br#"{"m":"xx WARN"}"#, &mut raw).unwrap();
    let at = raw.iter().position(|b| *b == b'x').unwrap();
    raw[at] = 0xff;
    let e = build_from_str(&format!("<filter **>\n{body}\n</filter>\n<match **>\n @type null\n</match>")).unwrap();
    let label = e.router.label(ROOT).unwrap();
    let f = label.filters().next().unwrap();
    let mut b = EventStreamBuilder::new();
    b.push_raw(T, &raw);
    assert_eq!(f.filter.filter("t", b.finish(), &FilterCx { router: &e.router, log: &f.info.log }).len(), 1);
}

#[test]
fn grep_and_or_groups() {
    let recs = [
        r#"{"level":"INFO","method":"GET","path":"/ping"}"#,
        r#"{"level":"WARN","method":"POST","path":"/auth"}"#,
        r#"{"level":"INFO","method":"POST","path":"/login"}"#,
        r#"{"level":"WARN","method":"GET","path":"/favicon.ico"}"#,
    ];
    let and = "@type grep\n<and>\n <regexp>\n  key level\n  pattern /^INFO$/\n </regexp>\n <regexp>\n  key method\n  pattern /^GET$/\n </regexp>\n</and>";
    assert_eq!(kept(and, &recs), vec![recs[0]]);
    let or = "@type grep\n<or>\n <exclude>\n  key level\n  pattern /^INFO$/\n </exclude>\n <exclude>\n  key method\n  pattern /^GET$/\n </exclude>\n</or>";
    assert_eq!(kept(or, &recs), vec![recs[1]]);
    let mix =
        "@type grep\n<regexp>\n key m\n pattern a\n</regexp>\n<or>\n <regexp>\n  key m\n  pattern b\n </regexp>\n</or>";
    assert_eq!(kept(mix, &[r#"{"m":"ab"}"#, r#"{"m":"a"}"#]), vec![r#"{"m":"ab"}"#]);
    let ex = "@type grep\n<exclude>\n key m\n pattern a\n</exclude>\n<and>\n <exclude>\n  key m\n  pattern b\n </exclude>\n</and>";
    assert!(kept(ex, &[r#"{"m":"ab"}"#, r#"{"m":"a"}"#, r#"{"m":"b"}"#]).is_empty());
    assert!(kept("@type grep\n<and>\n</and>", &["{}"]).len() == 1);
}

#[test]
fn grep_legacy_and_config_errors() {
    assert_eq!(
        kept(
            "@type grep\nregexp1 m WARN\nexclude1 m drop",
            &[r#"{"m":"WARN"}"#, r#"{"m":"WARN drop"}"#, r#"{"m":"x"}"#]
        ),
        vec![r#"{"m":"WARN"}"#]
    );
    // Legacy patterns are raw: slashes are literal.
    assert!(kept("@type grep\nregexp1 m /WARN/", &[r#"{"m":"WARN"}"#]).is_empty());
    assert!(config_error("@type grep\nregexp1 nospace").contains("regexp1 does not contain 2 parameters"));
    assert!(
        config_error("@type grep\n<regexp>\n key m\n pattern a\n</regexp>\n<regexp>\n key m\n pattern b\n</regexp>")
            .contains("Duplicate key: m")
    );
    assert!(
        config_error("@type grep\nregexp1 m a\n<regexp>\n key m\n pattern b\n</regexp>").contains("Duplicate key: m")
    );
    assert!(config_error("@type grep\n<and>\n <regexp>\n  key a\n  pattern x\n </regexp>\n <exclude>\n  key b\n  pattern y\n </exclude>\n</and>").contains("Do not specify both <regexp> and <exclude> in <and>"));
    assert!(config_error("@type grep\n<regexp>\n key m\n</regexp>").contains("'pattern' parameter is required"));
}

const RE: &str = "<parse>\n @type regexp\n expression /^(?<x>\\d+) (?<y>\\w+)$/\n</parse>";

#[test]
fn parser_replaces_or_merges() {
    let r = run(&format!("@type parser\nkey_name msg\n{RE}"), &[r#"{"msg":"1 a","k":"v"}"#]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, r#"{"x":"1","y":"a"}"#);
    // No time field: the parser estimates the current time.
    assert!(r[0].0.sec > 1_700_000_000);
    assert!(
        run(&format!("@type parser\nkey_name msg\n{RE}"), &[r#"{"msg":"zz"}"#, r#"{"k":"v"}"#, r#"{"msg":null}"#])
            .is_empty()
    );
    let r = run(
        &format!("@type parser\nkey_name msg\nreserve_data true\n{RE}"),
        &[r#"{"msg":"1 a","k":"v","x":"old"}"#, r#"{"msg":"zz","k":"v"}"#],
    );
    assert_eq!(
        r.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec![r#"{"msg":"1 a","k":"v","x":"1","y":"a"}"#, r#"{"msg":"zz","k":"v"}"#]
    );
    assert_eq!(r[1].0, T);
    assert_eq!(
        kept(
            &format!("@type parser\nkey_name msg\nreserve_data true\nremove_key_name_field true\n{RE}"),
            &[r#"{"msg":"1 a","k":"v"}"#]
        ),
        vec![r#"{"k":"v","x":"1","y":"a"}"#]
    );
    assert_eq!(
        kept(
            &format!("@type parser\nkey_name msg\nreserve_data true\ninject_key_prefix p.\n{RE}"),
            &[r#"{"msg":"1 a","k":"v"}"#]
        ),
        vec![r#"{"msg":"1 a","k":"v","p.x":"1","p.y":"a"}"#]
    );
    assert_eq!(
        kept(
            &format!("@type parser\nkey_name msg\nreserve_data true\ninject_key_prefix p.\nhash_value_field h\n{RE}"),
            &[r#"{"msg":"1 a","k":"v"}"#]
        ),
        vec![r#"{"msg":"1 a","k":"v","h":{"p.x":"1","p.y":"a"}}"#]
    );
    assert_eq!(
        kept(
            &format!("@type parser\nkey_name $.a.b\nreserve_data true\nremove_key_name_field true\n{RE}"),
            &[r#"{"a":{"b":"1 a","c":2}}"#]
        ),
        vec![r#"{"a":{"c":2},"x":"1","y":"a"}"#]
    );
    assert_eq!(
        kept(&format!("@type parser\nkey_name msg\nreserve_data true\nhash_value_field h\n{RE}"), &[r#"{"k":"v"}"#]),
        vec![r#"{"k":"v","h":{}}"#]
    );
}

#[test]
fn parser_times() {
    let json = "<parse>\n @type json\n</parse>";
    let r = run(&format!("@type parser\nkey_name msg\n{json}"), &[r#"{"msg":"{\"time\":1500000000,\"a\":1}"}"#]);
    assert_eq!(r, vec![(EventTime::new(1_500_000_000, 0), r#"{"a":1}"#.to_string())]);
    let r = run(
        &format!("@type parser\nkey_name msg\nreserve_time true\n{json}"),
        &[r#"{"msg":"{\"time\":1500000000,\"a\":1}"}"#],
    );
    assert_eq!(r, vec![(T, r#"{"a":1}"#.to_string())]);
    // estimate_current_event false keeps the original time.
    let r = run(
        "@type parser\nkey_name msg\n<parse>\n @type json\n estimate_current_event false\n</parse>",
        &[r#"{"msg":"{\"a\":1}"}"#],
    );
    assert_eq!(r, vec![(T, r#"{"a":1}"#.to_string())]);
    // An array: one record per object; the non-object is an error.
    let r = run(&format!("@type parser\nkey_name msg\n{json}"), &[r#"{"msg":"[{\"a\":1},2]"}"#]);
    assert_eq!(r.len(), 1);
    let r = run(
        "@type parser\nkey_name msg\nreserve_time true\n<parse>\n @type json\n keep_time_key true\n</parse>",
        &[r#"{"msg":"{\"time\":1383190430, \"f1\":\"v1\"}"}"#],
    );
    assert_eq!(r, vec![(T, r#"{"time":1383190430,"f1":"v1"}"#.to_string())]);
}

#[test]
fn parser_config_errors() {
    assert!(config_error(&format!("@type parser\n{RE}")).contains("'key_name' parameter is required"));
    assert!(config_error("@type parser\nkey_name msg").contains("<parse> section is required"));
    assert!(config_error("@type parser\nkey_name msg\n<parse>\n</parse>").contains("'@type' parameter is required"));
}
