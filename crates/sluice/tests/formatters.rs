//! Golden tests of every formatter: a `<format>` section and records in,
//! exact bytes out (expectations follow Fluentd's formatter tests).

use sluice::log::{LogSink, Logger};
use sluice::plugin::{BuildCx, EngineEnv, PluginInfo, formatter};
use sluice_config::{ConfigureCx, Diagnostics, SourceMap};
use sluice_event::strftime::{TimeFormatter, Zone};
use sluice_event::{EventTime, RecordRef, json};
use std::path::Path;
use std::sync::Weak;

/// 2016-07-27 04:08:30 UTC (Fluentd's formatter test time) with nanoseconds.
const T: EventTime = EventTime { sec: 1_469_592_510, nsec: 12_345_678 };

fn env() -> EngineEnv {
    let log = Logger::new(
        LogSink::new(Box::new(std::io::sink()), sluice::log::LogFormat::Text, "%Y"),
        sluice::log::Level::Info,
    );
    EngineEnv {
        worker_id: 0,
        workers: 1,
        hostname: "myhost".into(),
        log,
        router: Weak::new(),
        dry_run: true,
        root_dir: None,
        file_permission: None,
        dir_permission: None,
    }
}

/// Format `records` (JSON objects) with the `<format>` body `conf`.
fn fmt(conf: &str, tag: &str, records: &[&str]) -> Result<String, String> {
    fmt_bytes(conf, tag, records).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn fmt_bytes(conf: &str, tag: &str, records: &[&str]) -> Result<Vec<u8>, String> {
    let text = format!("<format>\n{conf}\n</format>\n");
    let mut sm = SourceMap::new();
    let mut diags = Diagnostics::new(false);
    let root = sluice_config::parse_str(
        Path::new("f.conf"),
        "f.conf",
        text,
        &sluice_config::parser::NoEval,
        &mut sm,
        &mut diags,
    )
    .ok_or("parse")?;
    let env = env();
    let mut cfg = ConfigureCx::new(&mut diags);
    let info = PluginInfo { id: "t".into(), has_id: false, type_name: "test".into(), log: env.log.clone() };
    let mut cx = BuildCx { cfg: &mut cfg, env: &env, info, label: None };
    let f = formatter::build_from(&root.elements[0], "json", &mut cx);
    if diags.has_errors() || f.is_none() {
        return Err(diags.iter().map(|d| d.headline(&sm)).collect::<Vec<_>>().join("\n"));
    }
    let f = f.unwrap();
    let mut out = Vec::new();
    for r in records {
        let mut raw = Vec::new();
        json::json_object_to_msgpack(r.as_bytes(), &mut raw).unwrap();
        f.format(tag, T, RecordRef::new(&raw).unwrap(), &mut out);
    }
    Ok(out)
}

const AWESOME: &str = r#"{"message":"awesome","greeting":"hello"}"#;

#[test]
fn json() {
    assert_eq!(fmt("@type json", "test", &[AWESOME]).unwrap(), "{\"message\":\"awesome\",\"greeting\":\"hello\"}\n");
    assert_eq!(fmt("@type json\nnewline crlf", "test", &[r#"{"a":1}"#]).unwrap(), "{\"a\":1}\r\n");
    assert_eq!(fmt("@type json\nadd_newline false", "test", &[r#"{"a":1}"#]).unwrap(), "{\"a\":1}");
    assert_eq!(
        fmt("@type json", "t", &[r#"{"s":"a/b\"c\\d\u0001日本","f":1e18,"g":0.1,"n":null,"t":true}"#]).unwrap(),
        "{\"s\":\"a/b\\\"c\\\\d\\u0001日本\",\"f\":1000000000000000000.0,\"g\":0.1,\"n\":null,\"t\":true}\n"
    );
}

#[test]
fn msgpack() {
    let out = fmt_bytes("@type msgpack", "t", &[r#"{"a":1}"#]).unwrap();
    assert_eq!(out, [0x81, 0xa1, b'a', 0x01]);
}

#[test]
fn ltsv() {
    assert_eq!(fmt("@type ltsv", "t", &[AWESOME]).unwrap(), "message:awesome\tgreeting:hello\n");
    assert_eq!(
        fmt("@type ltsv\ndelimiter ,\nlabel_delimiter =", "t", &[AWESOME]).unwrap(),
        "message=awesome,greeting=hello\n"
    );
    assert_eq!(
        fmt("@type ltsv", "t", &[r#"{"a":"x\ty","b":null,"c":{"k":[1]}}"#]).unwrap(),
        "a:x y\tb:\tc:{\"k\" => [1]}\n"
    );
}

#[test]
fn csv() {
    let two = r#"{"message":"awesome","message2":"awesome2"}"#;
    assert_eq!(fmt("@type csv\nfields message,message2", "t", &[two]).unwrap(), "\"awesome\",\"awesome2\"\n");
    assert_eq!(
        fmt("@type csv\nfields message,message2\nforce_quotes false", "t", &[two]).unwrap(),
        "awesome,awesome2\n"
    );
    let abc = r#"{"a":"x","b":1,"c":null}"#;
    assert_eq!(fmt("@type csv\nfields a,b,c", "t", &[abc]).unwrap(), "\"x\",\"1\",\"\"\n");
    assert_eq!(fmt("@type csv\nfields a,b,c\nforce_quotes false", "t", &[abc]).unwrap(), "x,1,\n");
    assert_eq!(
        fmt("@type csv\nfields a,b,c\nforce_quotes false", "t", &[r#"{"a":"","b":1.5,"c":true}"#]).unwrap(),
        "\"\",1.5,true\n"
    );
    assert_eq!(
        fmt("@type csv\nfields a\nforce_quotes false", "t", &[r#"{"a":"q\"q"}"#, r#"{"a":"l1\nl2"}"#]).unwrap(),
        "\"q\"\"q\"\n\"l1\nl2\"\n"
    );
    assert_eq!(
        fmt("@type csv\nfields message,$.nest.key", "t", &[r#"{"message":"awesome","nest":{"key":"awesome2"}}"#])
            .unwrap(),
        "\"awesome\",\"awesome2\"\n"
    );
    assert_eq!(
        fmt("@type csv\nfields a\ndelimiter TAB\nforce_quotes false", "t", &[r#"{"a":"x\ty"}"#]).unwrap(),
        "\"x\ty\"\n"
    );
    assert!(fmt("@type csv", "t", &[]).unwrap_err().contains("'fields' parameter is required"));
}

#[test]
fn tsv_single_value_hash() {
    assert_eq!(fmt("@type tsv\nkeys message,greeting", "t", &[AWESOME]).unwrap(), "awesome\thello\n");
    assert_eq!(fmt("@type tsv\nkeys message,missing", "t", &[AWESOME]).unwrap(), "awesome\t\n");
    assert_eq!(fmt("@type single_value", "t", &[AWESOME]).unwrap(), "awesome\n");
    assert_eq!(fmt("@type single_value\nadd_newline false", "t", &[AWESOME]).unwrap(), "awesome");
    assert_eq!(fmt("@type single_value\nmessage_key nothing", "t", &[AWESOME]).unwrap(), "\n");
    assert_eq!(
        fmt("@type hash", "t", &[AWESOME]).unwrap(),
        "{\"message\" => \"awesome\", \"greeting\" => \"hello\"}\n"
    );
}

#[test]
fn out_file() {
    let m = r#"{"message":"awesome"}"#;
    assert_eq!(
        fmt("@type out_file\nutc", "test", &[m]).unwrap(),
        "2016-07-27T04:08:30Z\ttest\t{\"message\":\"awesome\"}\n"
    );
    assert_eq!(
        fmt("@type out_file\ntimezone +09:00", "test", &[m]).unwrap(),
        "2016-07-27T13:08:30+09:00\ttest\t{\"message\":\"awesome\"}\n"
    );
    assert_eq!(
        fmt("@type out_file\ntime_type unixtime", "test", &[m]).unwrap(),
        "1469592510\ttest\t{\"message\":\"awesome\"}\n"
    );
    assert_eq!(
        fmt("@type out_file\ntime_type float", "test", &[m]).unwrap(),
        "1469592510.012345678\ttest\t{\"message\":\"awesome\"}\n"
    );
    assert_eq!(
        fmt("@type out_file\nutc\ntime_format %Y%m%d\ndelimiter SPACE\noutput_tag false", "test", &[m]).unwrap(),
        "20160727 {\"message\":\"awesome\"}\n"
    );
    assert_eq!(
        fmt("@type out_file\nutc\ndelimiter COMMA\noutput_time false", "test", &[m]).unwrap(),
        "test,{\"message\":\"awesome\"}\n"
    );
    assert!(
        fmt("@type out_file\nutc true\nlocaltime true", "t", &[]).unwrap_err().contains("both of utc and localtime")
    );
}

#[test]
fn stdout() {
    let local = TimeFormatter::new("%Y-%m-%d %H:%M:%S.%N %z", Zone::local()).format_string(T);
    assert_eq!(
        fmt("@type stdout", "filter.test", &[r#"{"test":"test"}"#]).unwrap(),
        format!("{local} filter.test: {{\"test\":\"test\"}}\n")
    );
    assert_eq!(
        fmt("@type stdout\noutput_type hash", "filter.test", &[r#"{"test":"test"}"#]).unwrap(),
        format!("{local} filter.test: {{\"test\" => \"test\"}}\n")
    );
    assert_eq!(
        fmt("@type stdout\noutput_type ltsv", "t", &[r#"{"a":1,"b":2}"#]).unwrap(),
        format!("{local} t: a:1\tb:2\n")
    );
    let ms = TimeFormatter::new("%Y-%m-%dT%H:%M:%S.%L%z", Zone::local()).format_string(T);
    assert_eq!(
        fmt("@type stdout\ntime_format %Y-%m-%dT%H:%M:%S.%L%z", "t", &[r#"{"a":1}"#]).unwrap(),
        format!("{ms} t: {{\"a\":1}}\n")
    );
    // The sub-formatter reads the same section.
    assert_eq!(
        fmt("@type stdout\noutput_type json\nadd_newline false", "t", &[r#"{"a":1}"#]).unwrap(),
        format!("{local} t: {{\"a\":1}}\n")
    );
}
