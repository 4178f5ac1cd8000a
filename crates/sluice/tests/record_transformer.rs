//! record_transformer against Fluentd's documented behaviour.

use sluice::engine::build_from_str;
use sluice::plugin::FilterCx;
use sluice::router::ROOT;
use sluice_event::{EventStreamBuilder, EventTime, json};

/// 2010-05-04 03:02:01 UTC
const T: EventTime = EventTime { sec: 1_272_942_121, nsec: 0 };

/// Run `<filter **>` with `body` over one record; returns (time, JSON records).
fn run(body: &str, tag: &str, record: &str) -> Vec<(EventTime, String)> {
    let conf =
        format!("<filter **>\n  @type record_transformer\n{body}\n</filter>\n<match **>\n  @type null\n</match>\n");
    let e = build_from_str(&conf).unwrap_or_else(|e| panic!("{e}"));
    let label = e.router.label(ROOT).unwrap();
    let f = label.filters().next().unwrap();
    let mut raw = Vec::new();
    json::json_object_to_msgpack(record.as_bytes(), &mut raw).unwrap();
    let mut b = EventStreamBuilder::new();
    b.push_raw(T, &raw);
    let out = f.filter.filter(tag, b.finish(), &FilterCx { router: &e.router, log: &f.info.log });
    out.iter()
        .map(|ev| {
            let mut j = Vec::new();
            json::write_json(ev.record.as_bytes(), &mut j).unwrap();
            (ev.time, String::from_utf8(j).unwrap())
        })
        .collect()
}

fn one(body: &str, tag: &str, record: &str) -> String {
    let mut v = run(body, tag, record);
    assert_eq!(v.len(), 1);
    v.remove(0).1
}

const REC: &str = r#"{"foo":"bar","message":"1","nest":{"k1":"v1","k2":"v2"}}"#;

#[test]
fn placeholders_non_ruby() {
    let host = sluice::plugin::hostname();
    let out = one(
        "<record>\n tag ${tag}\n message ${hostname} ${tag_parts[-1]} ${record[\"message\"]}\n</record>",
        "test.tag",
        REC,
    );
    assert_eq!(
        out,
        format!(r#"{{"foo":"bar","message":"{host} tag 1","nest":{{"k1":"v1","k2":"v2"}},"tag":"test.tag"}}"#)
    );
    let out = one(
        "<record>\n a ${tag_prefix[1]} ${tag_prefix[-2]} ${tag_suffix[2]} ${tag_suffix[-3]}\n</record>",
        "prefix.test.tag.suffix",
        "{}",
    );
    assert_eq!(out, r#"{"a":"prefix.test prefix.test.tag tag.suffix test.tag.suffix"}"#);
}

#[test]
fn auto_typecast_keeps_single_placeholder_types() {
    let src = r#"{"i":123,"a":[1,2],"n":null,"s":"x"}"#;
    let body = "<record>\n i ${record[\"i\"]}\n a ${record[\"a\"]}\n n ${record[\"n\"]}\n ii ${record[\"i\"]}${record[\"i\"]}\n p prefix-${record[\"a\"]}\n</record>";
    assert_eq!(one(body, "t", src), r#"{"i":123,"a":[1,2],"n":null,"s":"x","ii":"123123","p":"prefix-[1, 2]"}"#);
    let body = format!("auto_typecast false\n{body}");
    assert_eq!(one(&body, "t", src), r#"{"i":"123","a":"[1, 2]","n":"","s":"x","ii":"123123","p":"prefix-[1, 2]"}"#);
}

#[test]
fn remove_keys_renew_record_keep_keys() {
    assert_eq!(one("remove_keys foo,message", "t", REC), r#"{"nest":{"k1":"v1","k2":"v2"}}"#);
    assert_eq!(one("remove_keys $.nest.k1", "t", REC), r#"{"foo":"bar","message":"1","nest":{"k2":"v2"}}"#);
    assert_eq!(one("renew_record true\nkeep_keys message,foo,missing", "t", REC), r#"{"message":"1","foo":"bar"}"#);
    assert_eq!(
        one("renew_record true\n<record>\n b x\n a ${record[\"message\"]}\n</record>", "t", r#"{"a":0,"b":1}"#),
        r#"{"b":"x","a":null}"#
    );
    // Set, then removed: remove_keys applies after <record>.
    assert_eq!(one("remove_keys added\n<record>\n added 1\n</record>", "t", "{}"), "{}");
}

#[test]
fn json_values_and_keys_are_expanded() {
    let out = one(
        "<record>\n hash_field {\"k1\":100,\"k2\":\"${tag}\"}\n list [\"${tag}\", 1]\n \"${tag}\" key\n</record>",
        "test.tag",
        "{}",
    );
    assert_eq!(out, r#"{"hash_field":{"k1":100,"k2":"test.tag"},"list":["test.tag",1],"test.tag":"key"}"#);
}

#[test]
fn renew_time_key_uses_the_value_as_seconds() {
    let v = run("renew_time_key t", "x", r#"{"t":"1273111321.5"}"#);
    assert_eq!(v[0].0, EventTime::new(1_273_111_321, 500_000_000));
    let v = run("renew_time_key t\n<record>\n t 1273111322\n</record>", "x", "{}");
    assert_eq!(v[0].0, EventTime::new(1_273_111_322, 0));
}

#[test]
fn ruby_expressions() {
    let body = "enable_ruby\n<record>\n m ${\"'\" + record[\"message\"] + \"'\"}\n up ${tag.upcase}\n n ${record[\"nest\"][\"k2\"]}\n d ${record.dig(\"nest\", \"k1\")}\n s \"#{1}\"\n tab a\\tb ${tag_parts.last}\n</record>";
    let out = one(body, "test.tag", REC);
    assert_eq!(
        out,
        r#"{"foo":"bar","message":"1","nest":{"k1":"v1","k2":"v2"},"m":"'1'","up":"TEST.TAG","n":"v2","d":"v1","s":"1","tab":"a\tb tag"}"#
    );
    // A failing expression drops the event (it goes to @ERROR or the log).
    assert!(run("enable_ruby\n<record>\n x ${record[\"no\"][\"such\"]}\n</record>", "t", "{}").is_empty());
}
