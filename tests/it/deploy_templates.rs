//! The CDN templates no runtime here can deploy, checked statically: the
//! CloudFormation template parses and every `!Ref`, `!GetAtt`, `!If` and
//! `Condition` names something it defines; the Terraform parses as HCL and
//! every `var.` it reads is declared; both add the two Expo protocol headers
//! to manifests. (The edge code these templates install runs in
//! tests/it/edge.rs.)

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

/// Every (tag, argument) of the CloudFormation intrinsic functions in `v`.
fn intrinsics(v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Tagged(t) => {
            out.push((t.tag.to_string(), t.value.clone()));
            intrinsics(&t.value, out);
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("Condition") {
                    out.push(("!Condition".into(), v.clone()));
                }
                intrinsics(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| intrinsics(v, out)),
        _ => {}
    }
}

fn keys(doc: &Value, section: &str) -> BTreeSet<String> {
    doc[section]
        .as_mapping()
        .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn the_cloudformation_template_resolves_every_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cloudfront/otapub-cdn.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the template is YAML");
    let (params, resources, conditions) = (
        keys(&doc, "Parameters"),
        keys(&doc, "Resources"),
        keys(&doc, "Conditions"),
    );
    assert!(!resources.is_empty());
    let mut found = Vec::new();
    intrinsics(&doc, &mut found);
    let mut checked = 0;
    for (tag, arg) in &found {
        let name = |v: &Value| v.as_str().map(str::to_string);
        match tag.as_str() {
            "!Ref" => {
                let n = name(arg).expect("!Ref names a string");
                assert!(
                    n.starts_with("AWS::") || params.contains(&n) || resources.contains(&n),
                    "!Ref {n} names no parameter or resource"
                );
            }
            "!GetAtt" => {
                let n = name(arg).expect("!GetAtt Resource.Attribute");
                let res = n.split('.').next().unwrap().to_string();
                assert!(resources.contains(&res), "!GetAtt {n} names no resource");
            }
            "!If" => {
                let c = arg
                    .as_sequence()
                    .and_then(|s| s.first())
                    .and_then(|v| v.as_str())
                    .expect("!If [Condition, …]");
                assert!(conditions.contains(c), "!If {c} names no condition");
            }
            "!Condition" => {
                let c = name(arg).expect("a condition name");
                assert!(conditions.contains(&c), "Condition {c} is not defined");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} references found: the walk is broken");
    // The pointer headers policy adds the two protocol headers devices need.
    let text = serde_yaml::to_string(&doc).unwrap();
    for header in ["expo-protocol-version", "expo-sfv-version"] {
        assert!(text.contains(header), "the template sets no {header}");
    }
}

/// Every `var.NAME` in `text` (HCL references, inside `${…}` or bare).
fn variable_references(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("var.") {
        if text[..i].ends_with(ident) {
            continue;
        }
        let name: String = text[i + 4..].chars().take_while(|&c| ident(c)).collect();
        out.insert(name);
    }
    out
}

#[test]
fn the_terraform_declares_every_variable_it_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cloudflare/otapub-cdn.tf");
    let text = std::fs::read_to_string(&path).unwrap();
    let body: hcl::Body = hcl::from_str(&text).expect("the Terraform is HCL");
    let declared: BTreeSet<String> = body
        .blocks()
        .filter(|b| b.identifier() == "variable")
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_string()))
        .collect();
    let used = variable_references(&text);
    assert!(used.len() >= 2, "only {used:?} read: the scan is broken");
    let undeclared: Vec<&String> = used.difference(&declared).collect();
    assert!(undeclared.is_empty(), "read but not declared: {undeclared:?}");
    // Each ruleset is a zone ruleset on the zone given, with rules that say
    // when (an expression) and what (an action).
    let resource = |kind: &str| -> Vec<&hcl::Block> {
        body.blocks()
            .filter(|b| b.identifier() == "resource" && b.labels().first().map(|l| l.as_str()) == Some(kind))
            .collect()
    };
    let rulesets = resource("cloudflare_ruleset");
    assert_eq!(rulesets.len(), 3);
    // The Logpush job pushes what `otapub insights ingest --format cloudflare` reads.
    let jobs = resource("cloudflare_logpush_job");
    assert_eq!(jobs.len(), 1);
    let job = hcl::to_string(jobs[0]).unwrap();
    for needed in [
        "http_requests",
        "ClientRequestPath",
        "EdgeStartTimestamp",
        "EdgeResponseStatus",
        "EdgeResponseBytes",
        "RequestHeaders",
        "ResponseHeaders",
    ] {
        assert!(
            job.contains(&format!("\"{needed}\"")),
            "the Logpush job lacks {needed}: {job}"
        );
    }
    for header in [
        "eas-client-id",
        "expo-current-update-id",
        "expo-recent-failed-update-ids",
        "a-im",
        "expo-requested-update-id",
    ] {
        assert!(text.contains(&format!("\"{header}\"")), "no custom log field {header}");
    }
    for r in rulesets {
        let attr = |name: &str| {
            r.body()
                .attributes()
                .find(|a| a.key() == name)
                .map(|a| a.expr().to_string())
                .unwrap_or_default()
        };
        assert!(attr("zone_id").contains("var.zone_id"), "{:?}", r.labels());
        assert_eq!(attr("kind"), "\"zone\"", "{:?}", r.labels());
        let rules: Vec<&hcl::Block> = r.body().blocks().filter(|b| b.identifier() == "rules").collect();
        assert!(!rules.is_empty(), "{:?} has no rules", r.labels());
        for rule in rules {
            for needed in ["expression", "action"] {
                assert!(
                    rule.body().attributes().any(|a| a.key() == needed),
                    "a rule of {:?} has no {needed}",
                    r.labels()
                );
            }
        }
    }
    for header in ["expo-protocol-version", "expo-sfv-version"] {
        assert!(
            text.contains(&format!("\"{header}\"")),
            "the Terraform sets no {header}"
        );
    }
}

#[test]
fn variable_references_are_found_in_templates_and_bare() {
    let found = variable_references("a = var.one\nb = \"${var.two}x\"\nc = myvar.three\n");
    assert_eq!(found, BTreeSet::from(["one".to_string(), "two".to_string()]));
}
